"""End-to-end smoke tests of the HABLA recipe with a tiny local SSL."""

import json

import pytest
from conftest import assert_calibrated
from test_habla_prepare import RATIOS, build_full_release

from lobes.dataio.prepare import read_manifest
from lobes.evaluation.scores import read_scores


@pytest.fixture(scope="module")
def habla_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("habla")
    build_full_release(folder)
    return folder


# aasist.yaml: trained by its recipe-test row (tests/recipes/HABLA.csv); the
# checks below need one head only.
@pytest.mark.parametrize("hparams", ["ffn.yaml"])
def test_train_select_and_score(habla_data, tiny_ssl, tmp_path, run_recipe, hparams):
    output = tmp_path / "run"
    log = run_recipe(
        "HABLA",
        hparams,
        tmp_path,
        f"--data_folder={habla_data}",
        f"--output_folder={output}",
        f"--ssl_source={tiny_ssl}",
        f"--split_ratios={RATIOS}",
        "--n_layers=2",
        "--batch_size=8",
        "--max_samples=16000",
        "--num_workers=0",
        "--number_of_epochs=1",
    )
    trials = read_manifest(output / "manifests" / "test.csv")
    records = read_scores(output / "scores" / "test.txt")
    # Every test trial scored exactly once.
    assert len((output / "scores" / "test.txt").read_text().splitlines()) == len(trials)
    assert sorted(r.utt_id for r in records) == sorted(t["ID"] for t in trials)
    assert {(r.utt_id, r.key, r.attack) for r in records} == {
        (t["ID"], t["label"], t["attack"]) for t in trials
    }

    results = json.loads((output / "results.json").read_text())
    test = results["test_sets"]["test"]
    assert 0.0 <= test["eer"] <= 100.0
    assert_calibrated(results, output, "test")
    assert test["n_trials"] == len(trials)
    spoof_methods = {t["attack"] for t in trials if t["label"] == "spoof"}
    assert set(test["eer_by_attack"]) == spoof_methods
    families = {"TTS-VC" if m.startswith("TTS-VC") else m for m in spoof_methods}
    assert set(test["eer_by_method"]) == families
    assert results["config"]["class_weights"] == [0.3, 0.7]
    assert len(results["layer_weights"]) == 2
    assert sum(results["layer_weights"]) == pytest.approx(1.0)
    assert f"== test: {len(trials)} trials" in log
