"""Scoring with trained runs and releases: the detector, release folders and ``lobes.detect``."""
