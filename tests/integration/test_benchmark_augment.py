"""The augmentation benchmark runs and covers every method (never its timings)."""

import importlib.util
import os

from lobes.augment.codec import CODECS, missing_codecs
from lobes.augment.rawboost import MODES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC = importlib.util.spec_from_file_location("augment_bench", os.path.join(REPO, "benchmarks", "augment.py"))
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_benchmark_covers_every_mode_and_codec(capsys):
    bench.main(["--repeats", "1", "--markdown"])
    out = capsys.readouterr().out
    for mode in MODES:
        assert (f"| rawboost mode {mode} |" in out) == (mode != 0)
    missing = missing_codecs(CODECS)
    for codec in CODECS:  # timed, or named as one the build cannot run
        assert (f"| {codec} " in out) == (codec not in missing)
        assert (f" {codec} (" in out.splitlines()[-1]) == (codec in missing)
    assert "| noise (AddNoise) |" in out and "| reverb (AddReverb) |" in out
