"""A stand-in sweep of simulated score files (no training), laid out as
``lobes.experiments.sweep`` lays out runs, for the depth statistics of ``lobes.experiments.aggregate``.

Every run scores the same trials: a trial's latent score (bona fide ~ N(d, 1),
spoof ~ N(0, 1)) plus the run's own noise; the separation ``d`` grows with
the depth N, so shallow depths are worse.

    python tests/score_sweep.py OUT_ROOT [--trials 2000]
"""

import argparse
import json
import os

import numpy as np

# Separation by depth: N=2 clearly worse, N=8 about as good as N=12.
SEPARATION = {2: 2.3, 4: 2.6, 8: 2.8, 12: 2.8}
HEADS = {"ffn": 0.0, "aasist": 0.15}
SEEDS = (1, 2, 3)


def make_score_sweep(root, trials=2000, depths=SEPARATION, heads=HEADS, seeds=SEEDS, seed=0,
                     n_speakers=0, speaker_effect=0.0):
    """Writes ``<root>/ASVspoof2019/tiny-wavlm/<head>/N<n>/seed<s>/`` with
    ``results.json`` and ``scores/eval.txt``; returns the run folders.

    With ``n_speakers``, trial ``T<i>`` belongs to speaker ``S<i % n_speakers>``
    and every score of a speaker is shifted by ``speaker_effect`` times that
    speaker's offset (a standard normal draw): trials of one speaker are
    correlated, as in real test sets.
    """
    from lobes.evaluation.metrics import detection_metrics
    from lobes.evaluation.scores import ScoreRecord, write_scores

    rng = np.random.default_rng(seed)
    n_bonafide = trials // 4
    is_bonafide = np.arange(trials) < n_bonafide
    attacks = np.where(is_bonafide, "-", np.array(["A07", "A08", "A09"])[np.arange(trials) % 3])
    latent = rng.normal(0, 1, trials)
    if n_speakers:
        offsets = np.random.default_rng(seed + 1).normal(0, 1, n_speakers)
        latent = latent + speaker_effect * offsets[np.arange(trials) % n_speakers]
    folders = []
    for head, offset in heads.items():
        for depth, separation in depths.items():
            for run_seed in seeds:
                scores = np.where(is_bonafide, separation + offset, 0.0) + latent + rng.normal(0, 0.5, trials)
                folder = os.path.join(root, "ASVspoof2019", "tiny-wavlm", head, f"N{depth}", f"seed{run_seed}")
                records = [ScoreRecord(f"T{i:05d}", a, "bonafide" if b else "spoof", float(s))
                           for i, (a, b, s) in enumerate(zip(attacks, is_bonafide, scores))]
                write_scores(os.path.join(folder, "scores", "eval.txt"), records)
                eer = detection_metrics(scores[is_bonafide], scores[~is_bonafide])["eer"]
                config = {"ssl_source": "/models/tiny-wavlm", "n_layers": depth, "dataset": "ASVspoof2019",
                          "head_type": head, "seed": run_seed}
                with open(os.path.join(folder, "results.json"), "w", encoding="utf-8") as fout:
                    json.dump({"config": config, "layer_weights": [1.0 / depth] * depth,
                               "test_sets": {"eval": {"eer": eer}}}, fout)
                folders.append(folder)
    return folders


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--trials", type=int, default=2000)
    args = parser.parse_args()
    print(f"{len(make_score_sweep(args.root, args.trials))} runs under {args.root}")
