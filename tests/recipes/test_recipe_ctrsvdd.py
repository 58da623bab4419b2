"""End-to-end smoke tests of the CtrSVDD recipe with a tiny local SSL."""

import json

import pytest
from conftest import assert_calibrated
from test_ctrsvdd_prepare import build_ctrsvdd_tree, ctrsvdd_train, kept_ids

from lobes.dataio.prepare import read_manifest
from lobes.evaluation.scores import read_scores

EVAL_IDS = kept_ids("test.txt")


# aasist.yaml: trained by its recipe-test row (tests/recipes/CtrSVDD.csv); the
# checks below need one head only.
@pytest.mark.parametrize("hparams, crop", [("ffn.yaml", "random")])
def test_train_select_and_score(tmp_path, tiny_ssl, run_recipe, hparams, crop):
    data = build_ctrsvdd_tree(tmp_path / "data", seconds=1.0)
    output = tmp_path / "run"
    log = run_recipe(
        "CtrSVDD", hparams, tmp_path,
        f"--data_folder={data}",
        f"--output_folder={output}",
        f"--ssl_source={tiny_ssl}",
        "--n_layers=2",
        "--batch_size=4",
        "--max_samples=8000",  # half a clip: the random crop has room to move
        f"--train_crop={crop}",
        "--num_workers=0",
        "--number_of_epochs=1",
    )
    assert "4 of 22 protocol entries have no audio" in log
    assert "  train: kising 2 of 3 (bona fide 2, spoof 0)" in log

    # Both score files hold every scored eval trial exactly once.
    records = read_scores(output / "scores" / "eval.txt")
    assert sorted(r.utt_id for r in records) == sorted(EVAL_IDS)
    challenge_lines = (output / "scores" / "eval_challenge.txt").read_text().splitlines()
    assert len(challenge_lines) == len(EVAL_IDS)
    challenge = {utt: float(score) for utt, score in (line.split() for line in challenge_lines)}
    assert challenge == pytest.approx({r.utt_id: r.score for r in records}, abs=1e-6)

    results = json.loads((output / "results.json").read_text())
    metrics = results["test_sets"]["eval"]
    assert metrics["n_trials"] == len(EVAL_IDS) == 8
    assert_calibrated(results, output, "eval")
    # Recompute the headline from the written files: acesinger (2) and A14 (1) out.
    sources = {row["ID"]: row["source"] for row in read_manifest(output / "manifests" / "eval.csv")}
    eer, n_kept = ctrsvdd_train.challenge_eer(records, sources)
    assert n_kept == metrics["n_trials_challenge"] == 5
    assert metrics["eer_challenge"] == pytest.approx(100 * eer, abs=1e-3)
    assert set(metrics["eer_by_attack"]) == {"A09", "A10", "A11", "A12", "A14"}
    assert set(metrics["eer_by_source"]) == {"acesinger", "jvsmusic", "kising", "m4singer"}
    assert metrics["challenge_score_file"].endswith("eval_challenge.txt")
    assert results["config"]["train_crop"] == crop
    assert results["config"]["class_weights"] == [0.15, 0.85]
    assert len(results["layer_weights"]) == 2
