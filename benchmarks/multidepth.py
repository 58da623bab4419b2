#!/usr/bin/env python3
"""Wall time of a depth sweep: one run per depth against one multi-depth run.

Trains the ASVspoof2019 FFN recipe on a synthetic LA corpus with a randomly
initialised SSL (mid-size by default, so that the encoder dominates as it does
with real models) at each depth separately, then once with all depths on one
encoder pass, and prints the wall times and their ratios:

    python benchmarks/multidepth.py --depths 2 4 6 12 --epochs 1
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from lobes.synthetic import make_synthetic_la
from lobes.testing import save_tiny_ssl

RECIPE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes", "ASVspoof2019")


def timed_run(data, ssl, output, n_layers, epochs, batch_size):
    """Runs train.py once; returns its wall time in seconds."""
    command = [
        sys.executable, os.path.join(RECIPE, "train.py"), os.path.join(RECIPE, "hparams", "ffn.yaml"),
        f"--data_folder={data}", f"--output_folder={output}", f"--ssl_source={ssl}",
        f"--n_layers={n_layers}", f"--number_of_epochs={epochs}", f"--batch_size={batch_size}",
        f"--manifest_folder={os.path.join(data, 'manifests')}", "--num_workers=0",
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"run failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", nargs="+", type=int, default=[2, 4, 6, 12])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--trials", type=int, default=24, help="bona fide (= spoof) train trials")
    parser.add_argument("--hidden", type=int, default=256, help="SSL width (768 = base)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    workdir = args.workdir or tempfile.mkdtemp(prefix="multidepth-")
    data = os.path.join(workdir, "data")
    n = {"train": args.trials, "dev": args.trials // 2, "eval": args.trials // 2}
    if not os.path.isdir(os.path.join(data, "LA")):
        make_synthetic_la(data, n, n, seconds=(3.5, 4.5), seed=0, asv_scores=False)
    ssl = save_tiny_ssl(
        os.path.join(workdir, "ssl"), "wavlm", stable_layer_norm=False,
        n_layers=max(args.depths), hidden_size=args.hidden, conv_channels=args.hidden,
    )
    # Warm-up: prepares the shared manifests and the file cache.
    timed_run(data, ssl, os.path.join(workdir, "warmup"), min(args.depths), 1, args.batch_size)

    times = {}
    for depth in args.depths:
        times[depth] = timed_run(data, ssl, os.path.join(workdir, f"N{depth}"), depth, args.epochs, args.batch_size)
        print(f"single depth N={depth:<3} {times[depth]:7.1f} s", flush=True)
    multi = timed_run(data, ssl, os.path.join(workdir, "multi"), list(args.depths), args.epochs, args.batch_size)
    deepest = times[max(args.depths)]
    total = sum(times.values())
    print(f"multi-depth {args.depths}  {multi:7.1f} s")
    print(f"\n{len(args.depths)} separate runs: {total:.1f} s; one multi-depth run: {multi:.1f} s "
          f"({total / multi:.2f}x faster)")
    print(f"multi-depth run / deepest single run (N={max(args.depths)}): {multi / deepest:.2f}x "
          f"(target <= 1.5x)")
    print(f"workdir: {workdir}")


if __name__ == "__main__":
    main()
