"""Codec tests against the installed FFmpeg build: a test that needs a codec
the build lacks is skipped with the codec and what is missing named (it would
otherwise error in a fixture). With the locked versions none is missing;
``tests/unit/test_lock.py`` fails if the locked PyAV lacks one."""

import av
import pytest

from lobes.augment.codec import CODECS, missing_codecs

MISSING = missing_codecs(CODECS)


def require_codecs(*names):
    """Skips the calling test unless the build can run every codec of ``names``."""
    lacking = {name: MISSING[name] for name in names if name in MISSING}
    if lacking:
        named = "; ".join(f"{name} ({', '.join(what)})" for name, what in lacking.items())
        pytest.skip(f"the FFmpeg build of PyAV {av.__version__} lacks {named}")


def runnable(codecs):
    """The entries of a ``codec -> bitrates`` mapping that the build can run."""
    return {name: bitrates for name, bitrates in codecs.items() if name not in MISSING}
