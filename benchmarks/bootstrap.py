#!/usr/bin/env python3
"""Time of the bootstrap intervals (lobes.evaluation.bootstrap) on one core.

On random scores of a 611,829-trial set (the issue's size; 10 % bona fide
unless ``--bonafide`` says otherwise, ``--speakers`` speakers), measured
side by side in one run, each row the best of ``--repeats``:

- the plain metrics (``detection_metrics``: EER, minDCF, actDCF, Cllr from
  one sort), twice: the second row is the control and should read 1.00x;
- 1,000 replicates of EER and minDCF, trial and speaker resampling (target
  under 10 s);
- 1,000 replicates of all four metrics, trial and speaker resampling;
- the naive bootstrap (resample, sort, ``detection_metrics``) of
  ``--naive`` replicates, scaled to 1,000;
- a paired comparison (EER, trial resampling) of ``--paired`` replicates,
  scaled to 1,000;
- everything a recipe adds to one scored set's results (``record_intervals``:
  pooled and 16 attacks, raw and calibrated, speakers resampled).

Threads are pinned to one (BLAS, OpenMP) before numpy loads. Each row gives
wall-clock and CPU seconds (on a shared machine the CPU time is the fairer
figure for one core).

    python benchmarks/bootstrap.py [--repeats 1] [--naive 5] [--paired 100]
"""

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from lobes.evaluation.bootstrap import (  # noqa: E402
    paired_replicates,
    record_intervals,
    replicate_values,
)
from lobes.evaluation.metrics import detection_metrics  # noqa: E402
from lobes.evaluation.scores import ScoreRecord  # noqa: E402

N_TRIALS = 611_829
REPLICATES = 1000


def timed(function, repeats):
    """Best wall-clock and best CPU seconds (this process, one thread: the
    CPU figure is what a free core would take on a shared machine)."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return np.array([wall, cpu])


def naive(scores, labels, replicates, rng):
    """The textbook bootstrap: resample each class, sort, compute."""
    bonafide, spoof = scores[labels], scores[~labels]
    for _ in range(replicates):
        detection_metrics(bonafide[rng.integers(0, bonafide.size, bonafide.size)],
                          spoof[rng.integers(0, spoof.size, spoof.size)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs per row")
    parser.add_argument("--bonafide", type=int, default=61_183, help="bona fide trials of the 611,829")
    parser.add_argument("--speakers", type=int, default=700, help="speakers the trials belong to")
    parser.add_argument("--naive", type=int, default=5, help="naive replicates timed (scaled to 1,000)")
    parser.add_argument("--paired", type=int, default=100, help="paired replicates timed (scaled to 1,000)")
    parser.add_argument("--record", action=argparse.BooleanOptionalAction, default=True,
                        help="time record_intervals on the full set (the slowest row)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = np.arange(N_TRIALS) < args.bonafide
    scores = np.where(labels, 3.0, 0.0) + rng.normal(0, 1, N_TRIALS)
    speakers = rng.integers(0, args.speakers, N_TRIALS)
    rows = []

    def row(name, seconds, replicates=None):
        rows.append((name, seconds, replicates))
        print(f"{name:<70} {seconds[0]:8.3f} s wall {seconds[1]:8.3f} s CPU", flush=True)

    plain = timed(lambda: detection_metrics(scores[labels], scores[~labels]), args.repeats)
    row("plain metrics (EER, minDCF, actDCF, Cllr; one sort)", plain)
    row("plain metrics again (control)",
        timed(lambda: detection_metrics(scores[labels], scores[~labels]), args.repeats))
    two = ("eer", "min_dcf")
    row("bootstrap EER + minDCF, 1,000 replicates, trials resampled",
        timed(lambda: replicate_values(scores, labels, None, REPLICATES, metrics=two), args.repeats))
    row("bootstrap EER + minDCF, 1,000 replicates, speakers resampled",
        timed(lambda: replicate_values(scores, labels, speakers, REPLICATES, metrics=two), args.repeats))
    row("bootstrap all four metrics, 1,000 replicates, trials resampled",
        timed(lambda: replicate_values(scores, labels, None, REPLICATES), args.repeats))
    row("bootstrap all four metrics, 1,000 replicates, speakers resampled",
        timed(lambda: replicate_values(scores, labels, speakers, REPLICATES), args.repeats))
    if args.naive:
        seconds = timed(lambda: naive(scores, labels, args.naive, rng), args.repeats)
        row(f"naive bootstrap (a sort per replicate), {args.naive} replicates x {REPLICATES // args.naive}",
            seconds * REPLICATES / args.naive)
    if args.paired:
        other = scores + rng.normal(0, 0.3, N_TRIALS)
        seconds = timed(lambda: paired_replicates(scores, other, labels, None, args.paired, metrics=("eer",)),
                        args.repeats)
        row(f"paired EER, trials resampled, {args.paired} replicates x {REPLICATES // args.paired}",
            seconds * REPLICATES / args.paired)
        seconds = timed(lambda: paired_replicates(scores, other, labels, speakers, REPLICATES, metrics=("eer",)),
                        args.repeats)
        row("paired EER, speakers resampled, 1,000 replicates", seconds)
    if args.record:
        attacks = np.where(labels, "-", np.array([f"A{i}" for i in range(17, 33)])[np.arange(N_TRIALS) % 16])
        records = [ScoreRecord(f"T{i:07d}", a, "bonafide" if b else "spoof", s)
                   for i, (a, b, s) in enumerate(zip(attacks.tolist(), labels.tolist(), scores.tolist()))]
        by_id = {r.utt_id: f"S{k}" for r, k in zip(records, speakers.tolist())}
        seconds = timed(lambda: record_intervals(records, by_id, {"a": 0.5, "b": 0.2}), args.repeats)
        row("record_intervals: pooled + 16 attacks, raw + calibrated, speakers", seconds)
    print()
    print(f"| step ({N_TRIALS:,} trials, {args.bonafide:,} bona fide, {args.speakers} speakers; one thread) "
          "| wall s | CPU s | CPU x plain metrics |")
    print("|---|---:|---:|---:|")
    for name, seconds, _ in rows:
        print(f"| {name} | {seconds[0]:.3f} | {seconds[1]:.3f} | {seconds[1] / plain[1]:.2f}x |")


if __name__ == "__main__":
    main()
