#!/usr/bin/env python3
"""The foundation issue's figures: EER time on 600k trials, and parameters and
CPU forward time of wav2vec2-base-size and WavLM-large-size encoders at
several depths against the full model (random real-size weights).

Example
-------
::

    python benchmarks/foundation.py --repeats 7
"""

import argparse
import sys
import tempfile
import time

import numpy as np
import torch
from common import SAMPLE_RATE, progress_printer, quiet_libraries, remove_tree, save_random_model
from speed import benchmark_source

from lobes.evaluation.metrics import compute_eer


def time_eer(n_trials=600_000, bonafide_fraction=0.1, seed=0, repeats=3):
    """Best-of-``repeats`` time (s) of ``compute_eer`` on random scores.

    Example
    -------
    >>> seconds, eer = time_eer(n_trials=1000, repeats=1)
    >>> 0.0 <= eer <= 1.0
    True
    """
    rng = np.random.default_rng(seed)
    n_bonafide = int(n_trials * bonafide_fraction)
    bonafide = rng.normal(1.0, 1.0, n_bonafide)
    spoof = rng.normal(-1.0, 1.0, n_trials - n_bonafide)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        eer, _ = compute_eer(bonafide, spoof)
        best = min(best, time.perf_counter() - start)
    return best, eer


def run_foundation(folder, repeats, device, progress):
    """The foundation issue's figures: EER time, params and 4 s forward time."""
    seconds, eer = time_eer()
    print(f"EER on 600,000 random trials (60,000 bona fide): {seconds * 1000:.1f} ms "
          f"(best of 3; EER {100 * eer:.2f} %)", flush=True)
    rows = []
    for model_type, size, depths in (("wav2vec2", "base", (2, 4, 6, 12)),
                                      ("wavlm", "large", (2, 4, 6, 12, 24))):
        progress(f"building random {model_type}-{size}")
        source = save_random_model(folder, model_type, size)
        model_rows = benchmark_source(source, depths, device=device, repeats=repeats,
                                      n_samples=4 * SAMPLE_RATE, full=False, progress=progress)
        rows += model_rows
        remove_tree(source)
    print("\nparameters and forward time on 4 s of audio (batch 1, "
          f"{device}), ratios to the full model:")
    header = f"{'model':<16} {'N':>3} {'params(M)':>10} {'/full':>6} {'forward_ms':>11} {'/full':>6}"
    print(header)
    print("-" * len(header))
    for row in rows:
        name = row["model"] if row["approach"] == "truncated" else row["model"] + " paper"
        print(f"{name:<16} {row['n_layers']:>3} {row['params'] / 1e6:>10.1f} "
              f"{row['params/full']:>6.2f} {row['latency_ms']:>11.0f} {row['latency_ms/full']:>6.2f}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards (best kept)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    quiet_libraries()
    print(f"torch {torch.__version__}, device {args.device}, "
          f"{torch.get_num_threads()} CPU threads", flush=True)
    with tempfile.TemporaryDirectory(prefix="lobes-foundation-") as folder:
        run_foundation(folder, args.repeats, args.device, progress_printer())
    return 0


if __name__ == "__main__":
    sys.exit(main())
