"""Scoring with trained runs and releases: the detector, release folders and ``lobes.detect``.

The public names are imported on first use, so that importing one module of
this package does not load every other (and torch) with it.
"""

import importlib

# Public name -> the module that defines it.
_PUBLIC = {
    "SpoofDetector": "lobes.inference.detector",
    "DetectionResult": "lobes.inference.scoring",
    "ReleaseError": "lobes.inference.release_loader",
    "write_release": "lobes.inference.release",
    "verify_release": "lobes.inference.release",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
