"""End-to-end smoke tests of the ASVspoof 5 recipe with a tiny local SSL."""

import json

import pytest
from conftest import smoke_overrides

from lobes.evaluation.scores import read_scores
from lobes.testing.synthetic import make_synthetic_asvspoof5

COUNTS = {"train": 6, "dev": 4, "eval": 6}


@pytest.fixture(scope="module")
def asv5_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("asvspoof5")
    make_synthetic_asvspoof5(folder, COUNTS, COUNTS, seconds=(0.6, 1.2), seed=3)
    return folder


def protocol_ids(path):
    return sorted(line.split()[1] for line in path.read_text().splitlines())


# aasist.yaml: trained by its recipe-test row (tests/recipes/ASVspoof5.csv); the
# checks below need one head only.
@pytest.mark.parametrize("hparams", ["ffn.yaml"])
def test_train_select_calibrate_and_score(asv5_data, tiny_ssl, tmp_path, run_recipe, hparams):
    output = tmp_path / "run"
    log = run_recipe(
        "ASVspoof5", hparams, tmp_path, *smoke_overrides(asv5_data, tiny_ssl, output, "--number_of_epochs=1")
    )
    expected = protocol_ids(asv5_data / "ASVspoof5.eval.track_1.tsv")
    for name in ("eval.txt", "eval.calibrated.txt", "dev.txt"):
        ids = sorted(r.utt_id for r in read_scores(output / "scores" / name))
        assert ids == (expected if name.startswith("eval") else protocol_ids(asv5_data / "ASVspoof5.dev.track_1.tsv"))

    challenge = (output / "scores" / "eval_challenge.tsv").read_text().splitlines()
    assert challenge[0] == "filename\tcm-score"
    assert sorted(line.split("\t")[0] for line in challenge[1:]) == expected
    raw = {r.utt_id: r.score for r in read_scores(output / "scores" / "eval.txt")}
    for line in challenge[1:]:
        utt_id, score = line.split("\t")
        assert float(score) == pytest.approx(raw[utt_id], abs=1e-5)

    results = json.loads((output / "results.json").read_text())
    assert set(results["test_sets"]) == {"dev", "eval"}
    calibration = json.loads((output / "calibration.json").read_text())
    evaluation = results["test_sets"]["eval"]
    for key in ("eer", "min_dcf", "act_dcf", "cllr"):
        assert key in evaluation and key in evaluation["calibrated"]
    assert evaluation["calibration"]["a"] == pytest.approx(calibration["a"])
    assert evaluation["calibrated"]["eer"] == pytest.approx(evaluation["eer"])
    assert set(evaluation["by_attack"]) == {"A17", "A18", "pooled"}
    assert set(evaluation["by_codec"]) == {"-", "C01", "C02", "pooled"}
    assert evaluation["by_attack"]["pooled"]["act_dcf"] == pytest.approx(evaluation["act_dcf"])
    assert set(evaluation["calibrated_breakdowns"]["by_codec"]) == {"-", "C01", "C02", "pooled"}
    assert "by_codec" not in results["test_sets"]["dev"]  # dev is not coded
    assert (output / "scores" / "eval_challenge.calibrated.tsv").is_file()
    assert "== eval: 12 trials" in log


def test_multi_depth_branches_calibrate_on_their_own_dev_scores(asv5_data, tiny_ssl, tmp_path, run_recipe):
    output = tmp_path / "run"
    run_recipe(
        "ASVspoof5", "ffn.yaml", tmp_path,
        *smoke_overrides(asv5_data, tiny_ssl, output, "--number_of_epochs=1", n_layers="[1,2]"),
    )
    calibrations = []
    for branch in ("N1", "N2"):
        folder = output / branch
        calibration = json.loads((folder / "calibration.json").read_text())
        results = json.loads((folder / "results.json").read_text())
        assert results["test_sets"]["eval"]["calibration"]["a"] == pytest.approx(calibration["a"])
        assert (folder / "scores" / "eval.calibrated.txt").is_file()
        calibrations.append(calibration["a"])
    assert calibrations[0] != calibrations[1]
    # The depths of the run fuse into one system (python -m lobes.fuse).
    from lobes.evaluation.score_fusion import main as fuse_main

    fuse_main([str(output), "--out", str(tmp_path / "fused")])
    fused = json.loads((tmp_path / "fused" / "results.json").read_text())
    assert len(fused["fusion"]["weights"]) == 2 and set(fused["test_sets"]) == {"dev", "eval"}
    assert len(read_scores(tmp_path / "fused" / "scores" / "eval.txt")) == 2 * COUNTS["eval"]
