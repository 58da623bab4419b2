#!/usr/bin/env python3
"""Offline demo: the ASVspoof 2019 recipe end to end on synthetic data.

Needs no dataset and no network. It writes a small synthetic corpus in the
LA layout (spoofs are vocoder-style resyntheses of bona fide signals), saves
a tiny randomly initialised wav2vec2 locally, runs ``train.py`` with the FFN
recipe on them, and prints the eval EER. Outputs go to ``--workdir``:
the score file, ``results.json`` and ``layer_weights.png``.

    python recipes/ASVspoof2019/demo.py --workdir demo_run
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

from lobes.experiments.plots import plot_layer_weights
from lobes.testing.synthetic import make_synthetic_la
from lobes.testing.tiny_models import save_tiny_ssl


def parse_args(argv):
    """The options of the demo."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="demo_run", help="where everything is written")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--n_layers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=100, help="bona fide (= spoof) trials in train")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.0005)
    return parser.parse_args(argv)


def main(argv=None):
    """Writes the synthetic corpus and tiny SSL, trains the recipe and prints the eval EER."""
    args = parse_args(argv)
    start = time.time()
    workdir = os.path.abspath(args.workdir)
    data_folder = os.path.join(workdir, "data")
    if not os.path.isdir(os.path.join(data_folder, "LA")):
        n_dev = max(args.trials // 2, 4)
        print(f"writing synthetic LA corpus to {data_folder}", flush=True)
        make_synthetic_la(
            data_folder,
            n_bonafide={"train": args.trials, "dev": n_dev, "eval": n_dev},
            n_spoof={"train": args.trials, "dev": n_dev, "eval": n_dev},
            seconds=(2.0, 4.5),
            seed=0,
        )
    ssl_path = save_tiny_ssl(
        os.path.join(workdir, "ssl"), "wav2vec2", hidden_size=64, conv_channels=64
    )
    output_folder = os.path.join(workdir, "run")
    command = [
        sys.executable,
        os.path.join(HERE, "train.py"),
        os.path.join(HERE, "hparams", "ffn.yaml"),
        f"--data_folder={data_folder}",
        f"--output_folder={output_folder}",
        f"--ssl_source={ssl_path}",
        f"--n_layers={args.n_layers}",
        f"--number_of_epochs={args.epochs}",
        f"--seed={args.seed}",
        "--batch_size=16",
        f"--lr={args.lr}",
        # The synthetic corpus is balanced, unlike ASVspoof 2019.
        "--class_weights=[0.5, 0.5]",
        "--num_workers=0",
    ]
    print("running:", " ".join(command), flush=True)
    subprocess.run(command, check=True)

    with open(os.path.join(output_folder, "results.json"), encoding="utf-8") as fin:
        results = json.load(fin)
    plot_path = os.path.join(workdir, "layer_weights.png")
    plot_layer_weights(results["layer_weights"], plot_path, title="Demo: learned layer weights")
    eval_results = results["test_sets"]["eval"]
    print(
        f"\nDemo finished in {time.time() - start:.0f} s: eval EER {eval_results['eer']:.2f} % "
        f"on {eval_results['n_trials']} trials\n"
        f"  scores:        {eval_results['score_file']}\n"
        f"  results:       {os.path.join(output_folder, 'results.json')}\n"
        f"  layer weights: {plot_path}"
    )
    return eval_results["eer"]


if __name__ == "__main__":
    main()
