#!/usr/bin/env python3
"""Time of the ASVspoof 5 metrics on a full-size eval set (680,774 trials).

Measures, on random scores with the eval set's composition (138,688 bona
fide, 542,086 spoof, attacks A17-A32, codecs -/C01-C11), everything a
recipe computes for one scored set: ``record_metrics`` (EER, EER per attack,
minDCF, actDCF, Cllr), the ASVspoof 5 recipe's breakdowns by attack and by
codec (each with ``pooled``), and the calibrated scores' metrics and
breakdowns. Target: under 2 s together. Fitting the calibration (on the dev
set, 140,950 trials) is timed apart. Writing score files is not timed.

    python benchmarks/metrics.py [--repeats 3]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "recipes", "ASVspoof5"))
from train import codec_grouping  # noqa: E402

from lobes.evaluation.calibration import fit_calibration  # noqa: E402
from lobes.evaluation.metrics import (  # noqa: E402
    detection_metrics,
    metrics_by_groups,
    record_metrics,
)
from lobes.evaluation.scores import ScoreRecord  # noqa: E402

N_BONAFIDE, N_SPOOF = 138_688, 542_086  # ASVspoof 5 eval, track 1
N_DEV_BONAFIDE, N_DEV_SPOOF = 31_334, 109_616


def synthetic_set(rng, n_bonafide, n_spoof, prefix):
    attacks = [f"A{i}" for i in range(17, 33)]
    codecs = ["-"] + [f"C{i:02d}" for i in range(1, 12)]
    bonafide = np.arange(n_bonafide + n_spoof) < n_bonafide
    scores = np.where(bonafide, 2.0, -2.0) * 3 + rng.normal(0, 6, bonafide.size)
    attack = np.where(bonafide, "-", rng.choice(attacks, bonafide.size))
    records = [
        ScoreRecord(f"{prefix}_{i:010d}", a, "bonafide" if b else "spoof", float(s))
        for i, (a, b, s) in enumerate(zip(attack.tolist(), bonafide.tolist(), scores.tolist()))
    ]
    return records, rng.choice(codecs, bonafide.size).tolist()


def timed(function, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    records, codecs = synthetic_set(rng, N_BONAFIDE, N_SPOOF, "E")
    dev, _ = synthetic_set(rng, N_DEV_BONAFIDE, N_DEV_SPOOF, "D")

    calibration = fit_calibration(dev)

    def calibrated_metrics():
        # What lobes.evaluation.calibration.calibrated_test_outputs computes.
        raw = np.fromiter((r.score for r in records), dtype=np.float64, count=len(records))
        bonafide = np.array([r.key == "bonafide" for r in records], dtype=bool)
        calibrated = calibration.apply(raw)
        return detection_metrics(calibrated[bonafide], calibrated[~bonafide]), calibrated, bonafide

    def calibrated_breakdowns():
        # What the ASVspoof 5 recipe adds for the calibrated scores.
        _, calibrated, bonafide = calibrated_metrics()
        groupings = {"by_attack": ([r.attack for r in records], True), **codec_grouping(codecs)}
        return metrics_by_groups(calibrated, bonafide, groupings)

    steps = {
        "raw: EER, minDCF, actDCF, Cllr, by attack and by codec": lambda: record_metrics(
            records, groupings=codec_grouping(codecs)
        ),
        "calibrated: pooled metrics": calibrated_metrics,
        "calibrated: the same with breakdowns by attack and codec": calibrated_breakdowns,
    }
    total = 0.0
    print(f"{len(records)} eval trials ({N_BONAFIDE} bona fide), {len(dev)} dev trials; best of {args.repeats}")
    for name, step in steps.items():
        seconds, _ = timed(step, args.repeats)
        if name != "calibrated: pooled metrics":  # a part of the next step
            total += seconds
        print(f"  {name:<66} {seconds:6.3f} s")
    print(f"  {'all together':<66} {total:6.3f} s  (target < 2 s)")
    seconds, _ = timed(lambda: fit_calibration(dev), args.repeats)
    print(f"  {'(dev set: fitting the calibration on 140,950 trials)':<66} {seconds:6.3f} s")
    print(f"load average while measuring: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
