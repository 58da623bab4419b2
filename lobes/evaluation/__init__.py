"""Metrics, score files, calibration, fusion, intervals and localisation scoring."""
