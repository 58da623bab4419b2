#!/usr/bin/env python3
"""Wall time and peak memory of a sweep cell: separate runs, multi-depth
runs, and one branched run (every head x depth x seed on one encoder pass).

Trains the ASVspoof2019 recipe on a synthetic LA corpus with a randomly
initialised WavLM-style SSL (mid-size by default, so that the encoder
dominates as it does with real models), in one invocation:

- one separate run per (head, depth, seed);
- one multi-depth run per (head, seed) (all depths on one encoder pass);
- one branched run (``--heads --init_seeds`` lists).

and prints a Markdown table of wall time, peak resident memory (RSS of the
training process; CUDA peak is not measured on CPU) and, for the branched
run, the share of training compute spent in the heads (from the run's
``encoder_s``/``heads_s`` train-log fields):

    python benchmarks/multidepth.py --depths 2 4 6 12 --seeds 1 42 1234 --epochs 1
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from lobes.testing.synthetic import make_synthetic_la
from lobes.testing.tiny_models import save_tiny_ssl

RECIPE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes", "ASVspoof2019")


def timed_run(args, data, ssl, output, hparams, *overrides):
    """Runs train.py once; returns (wall seconds, peak RSS in MiB)."""
    command = [
        sys.executable, os.path.join(RECIPE, "train.py"), os.path.join(RECIPE, "hparams", hparams),
        f"--data_folder={data}", f"--output_folder={output}", f"--ssl_source={ssl}",
        f"--number_of_epochs={args.epochs}", f"--batch_size={args.batch_size}",
        f"--manifest_folder={os.path.join(data, 'manifests')}", "--num_workers=0", "--device=cpu",
        *overrides,
    ]
    # Peak RSS of this child alone: wrap it so that getrusage sees only it.
    wrapper = [sys.executable, "-c",
               "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
               "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)",
               *command]
    start = time.perf_counter()
    result = subprocess.run(wrapper, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"run failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    peak_kb = int(re.search(r"PEAK_KB (\d+)", result.stdout).group(1))
    return elapsed, peak_kb / 1024


def head_share(train_log):
    """(encoder s, heads s) of the last epoch logged by a branched run."""
    with open(train_log, encoding="utf-8") as fin:
        last = [line for line in fin if "heads_s" in line][-1]
    encoder = float(re.search(r"encoder_s: ([\d.e+-]+)", last).group(1))
    heads = float(re.search(r"heads_s: ([\d.e+-]+)", last).group(1))
    return encoder, heads


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", nargs="+", type=int, default=[2, 4, 6, 12])
    parser.add_argument("--heads", nargs="+", default=["ffn", "aasist"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 42, 1234])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--trials", type=int, default=24, help="bona fide (= spoof) train trials")
    parser.add_argument("--hidden", type=int, default=256, help="SSL width (768 = base)")
    parser.add_argument("--seconds", type=float, default=4.0, help="utterance length")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    workdir = args.workdir or tempfile.mkdtemp(prefix="multidepth-")
    data = os.path.join(workdir, "data")
    n = {"train": args.trials, "dev": args.trials // 2, "eval": args.trials // 2}
    if not os.path.isdir(os.path.join(data, "LA")):
        make_synthetic_la(data, n, n, seconds=(args.seconds - 0.5, args.seconds + 0.5), seed=0, asv_scores=False)
    ssl = save_tiny_ssl(
        os.path.join(workdir, "ssl"), "wavlm", stable_layer_norm=False,
        n_layers=max(args.depths), hidden_size=args.hidden, conv_channels=args.hidden,
    )
    crop = f"--max_samples={int(args.seconds * 16000)}"
    # Warm-up: prepares the shared manifests and the file cache.
    timed_run(args, data, ssl, os.path.join(workdir, "warmup"), "ffn.yaml", f"--n_layers={min(args.depths)}", crop)

    rows = []
    separate = {}
    for head in args.heads:
        for depth in args.depths:
            for seed in args.seeds:
                separate[head, depth, seed] = timed_run(
                    args, data, ssl, os.path.join(workdir, "separate", head, f"N{depth}", f"seed{seed}"),
                    f"{head}.yaml", f"--n_layers={depth}", f"--seed={seed}", crop)
                print(f"separate {head} N={depth} seed {seed}: {separate[head, depth, seed][0]:.1f} s", flush=True)
    multi = {}
    for head in args.heads:
        for seed in args.seeds:
            multi[head, seed] = timed_run(
                args, data, ssl, os.path.join(workdir, "multi", head, f"seed{seed}"), f"{head}.yaml",
                f"--n_layers={list(args.depths)}", f"--seed={seed}", crop)
            print(f"multi-depth {head} seed {seed}: {multi[head, seed][0]:.1f} s", flush=True)
    branched_dir = os.path.join(workdir, "branched")
    branched = timed_run(
        args, data, ssl, branched_dir, f"{args.heads[0]}.yaml", f"--n_layers={list(args.depths)}",
        f"--heads=[{', '.join(args.heads)}]", f"--init_seeds={list(args.seeds)}", f"--seed={args.seeds[0]}", crop)
    encoder_s, heads_s = head_share(os.path.join(branched_dir, "train_log.txt"))

    deepest = max(separate[h, max(args.depths), args.seeds[0]][0] for h in args.heads)
    n_sep, n_multi = len(separate), len(multi)
    rows.append((f"{n_sep} separate runs", sum(t for t, _ in separate.values()),
                 max(m for _, m in separate.values())))
    rows.append((f"{n_multi} multi-depth runs", sum(t for t, _ in multi.values()),
                 max(m for _, m in multi.values())))
    rows.append(("1 branched run", *branched))
    print(f"\nsizes: SSL {max(args.depths)} layers x {args.hidden} wide, {args.trials} + {args.trials} train "
          f"trials of {args.seconds:.1f} s, batch {args.batch_size}, {args.epochs} epoch(s), "
          f"heads {args.heads}, depths {args.depths}, seeds {args.seeds}\n")
    print("| setting | wall time (s) | x deepest single run | peak RSS (MiB, largest run) |")
    print("|---|---|---|---|")
    for name, seconds, peak in rows:
        print(f"| {name} | {seconds:.1f} | {seconds / deepest:.2f} | {peak:.0f} |")
    print(f"\ndeepest single run (N={max(args.depths)}, slowest head): {deepest:.1f} s; "
          f"branched / deepest: {branched[0] / deepest:.2f}x (goal <= 2x); "
          f"separate / branched: {rows[0][1] / branched[0]:.1f}x")
    print(f"branched run training compute: encoder {encoder_s:.1f} s, heads {heads_s:.1f} s "
          f"({100 * heads_s / (encoder_s + heads_s):.0f} % heads)")
    print(f"workdir: {workdir}")


if __name__ == "__main__":
    main()
