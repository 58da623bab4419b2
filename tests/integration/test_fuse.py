"""Score fusion of several runs (python -m lobes.fuse)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lobes.evaluation.calibration import fit_calibration
from lobes.evaluation.metrics import detection_metrics
from lobes.evaluation.score_fusion import FusionError, fuse
from lobes.evaluation.scores import ScoreRecord, read_scores, write_scores


def make_run(folder, truth, noise_seed, sets=("dev", "eval"), scale=3.0):
    """A run folder with score files and results.json: one noisy view of
    ``truth`` (set -> (ids, is_bonafide, latent)) per set."""
    rng = np.random.default_rng(noise_seed)
    results = {"test_sets": {}}
    for name in sets:
        ids, bonafide, latent = truth[name]
        scores = scale * (latent + rng.normal(0, 1.5, latent.size))
        write_scores(
            os.path.join(folder, "scores", f"{name}.txt"),
            [ScoreRecord(u, "-" if b else "A01", "bonafide" if b else "spoof", float(s))
             for u, b, s in zip(ids, bonafide, scores)],
        )
        results["test_sets"][name] = {"eer": 0.0}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "results.json"), "w", encoding="utf-8") as fout:
        json.dump(results, fout)
    return folder


def make_truth(seed, n=2000):
    rng = np.random.default_rng(seed)
    truth = {}
    for name in ("dev", "eval"):
        bonafide = rng.random(n) < 0.3
        latent = np.where(bonafide, 1.0, -1.0) + rng.normal(0, 0.3, n)
        truth[name] = ([f"{name}_{i}" for i in range(n)], bonafide, latent)
    return truth


def split(records):
    return ([r.score for r in records if r.key == "bonafide"],
            [r.score for r in records if r.key == "spoof"])


def test_fusion_of_two_runs_beats_each_and_is_calibrated(tmp_path):
    truth = make_truth(0)
    runs = [make_run(str(tmp_path / f"run{i}"), truth, noise_seed=i) for i in (1, 2)]
    out = tmp_path / "fused"
    result = subprocess.run(
        [sys.executable, "-m", "lobes.fuse", *runs, "--out", str(out)],
        capture_output=True, text=True, check=True,
    )
    assert "fusion weights" in result.stdout and "eval" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert set(results["test_sets"]) == {"dev", "eval"}
    weights = results["fusion"]["weights"]
    assert len(weights) == 2 and all(w > 0 for w in weights)
    fused = read_scores(out / "scores" / "eval.txt")
    assert sorted(r.utt_id for r in fused) == sorted(truth["eval"][0])
    fused_metrics = detection_metrics(*split(fused))
    assert results["test_sets"]["eval"]["cllr"] == pytest.approx(fused_metrics["cllr"], abs=1e-5)
    for run in runs:
        # Each run alone, calibrated on its own dev scores: fusion does better.
        calibration = fit_calibration(read_scores(os.path.join(run, "scores", "dev.txt")))
        single = calibration.apply_records(read_scores(os.path.join(run, "scores", "eval.txt")))
        alone = detection_metrics(*split(single))
        assert fused_metrics["eer"] < alone["eer"] and fused_metrics["cllr"] < alone["cllr"]
    for key in ("min_dcf", "act_dcf", "eer_by_attack"):
        assert key in results["test_sets"]["eval"]


def test_multi_depth_run_stands_for_its_depths(tmp_path):
    truth = make_truth(1, n=300)
    for i, depth in enumerate((2, 12)):
        make_run(str(tmp_path / "multi" / f"N{depth}"), truth, noise_seed=i)
    results = fuse([str(tmp_path / "multi")], str(tmp_path / "fused"))
    assert [os.path.basename(s) for s in results["systems"]] == ["N2", "N12"]


def test_mismatched_trial_sets_are_refused_naming_the_trials(tmp_path):
    truth = make_truth(2, n=200)
    first = make_run(str(tmp_path / "a"), truth, noise_seed=1)
    other = {k: (list(v[0]), v[1], v[2]) for k, v in truth.items()}
    other["eval"][0][7] = "eval_stranger"
    second = make_run(str(tmp_path / "b"), other, noise_seed=2)
    with pytest.raises(FusionError, match=r"eval: .* scored different trials: only in the first 1 \(eval_7\); "
                                          r"only in the second 1 \(eval_stranger\)"):
        fuse([first, second], str(tmp_path / "fused"))
    assert not (tmp_path / "fused").exists()  # nothing written
    result = subprocess.run(
        [sys.executable, "-m", "lobes.fuse", first, second, "--out", str(tmp_path / "fused")],
        capture_output=True, text=True,
    )
    assert result.returncode != 0 and "eval_stranger" in result.stderr
    with pytest.raises(FusionError, match="at least two systems"):
        fuse([first], str(tmp_path / "fused"))
