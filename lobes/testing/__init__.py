"""Tiny local SSL models and synthetic corpora for the demo and the tests."""
