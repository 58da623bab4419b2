"""Atomic writes, safe paths and names, output locks and the run folder layout."""
