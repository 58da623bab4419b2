"""Sweeps over SSL x head x depth x seed, their tables, plots and statistics."""
