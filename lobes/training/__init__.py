"""The shared Brain, start-up option checks, DDP helpers and the recipe steps."""
