"""End-to-end smoke tests of the SceneFake recipe with a tiny local SSL."""

import json

import pytest
from conftest import assert_calibrated
from test_scenefake_prepare import FLAT_LISTS, FOLDER_SPLITS, build_flat_tree, build_folder_tree

from lobes.dataio.prepare import read_manifest
from lobes.evaluation.scores import read_scores


def overrides(data, tiny_ssl, output):
    return (
        f"--data_folder={data}",
        f"--output_folder={output}",
        f"--ssl_source={tiny_ssl}",
        "--n_layers=2",
        "--batch_size=4",
        "--max_samples=8000",
        "--num_workers=0",
        "--number_of_epochs=1",
    )


def assert_scored_once(score_file, manifest):
    """Every manifest trial appears exactly once in the score file."""
    records = read_scores(score_file)
    rows = read_manifest(manifest)
    assert sorted(r.utt_id for r in records) == sorted(row["ID"] for row in rows)
    labels = {row["ID"]: row["label"] for row in rows}
    assert all(r.key == labels[r.utt_id] for r in records)
    return records


@pytest.mark.parametrize(
    "form, hparams, expected_sets",
    [
        ("folder", "ffn.yaml", {"seen": "eval", "unseen": "test"}),
        ("flat", "aasist.yaml", {"seen": "eval"}),
    ],
)
def test_train_select_and_score_every_test_set(tmp_path, tiny_ssl, run_recipe, form, hparams, expected_sets):
    data = tmp_path / "data"
    if form == "folder":
        build_folder_tree(data)
        trials = {split: len(real) + len(fake) for split, (real, fake) in FOLDER_SPLITS.items()}
    else:
        build_flat_tree(data)
        trials = {split: len(lines) for split, lines in FLAT_LISTS.items()}
    output = tmp_path / "run"
    log = run_recipe("SceneFake", hparams, tmp_path, *overrides(data, tiny_ssl, output))

    results = json.loads((output / "results.json").read_text())
    # dev is scored too: it fits the calibration of the test sets.
    assert set(results["test_sets"]) == {"dev", *expected_sets}
    assert sorted(p.name for p in (output / "scores").iterdir()) == sorted(
        ["dev.txt"]
        + [f"{name}.txt" for name in expected_sets]
        + [f"{name}.calibrated.txt" for name in expected_sets]
    )
    for name, split in expected_sets.items():
        records = assert_scored_once(output / "scores" / f"{name}.txt", output / "manifests" / f"{split}.csv")
        assert len(records) == trials[split]
        metrics = results["test_sets"][name]
        assert metrics["n_trials"] == trials[split]
        assert 0.0 <= metrics["eer"] <= 100.0
        assert f"== {name}: {trials[split]} trials" in log
        assert_calibrated(results, output, name)
    assert len(results["layer_weights"]) == 2
    assert sum(results["layer_weights"]) == pytest.approx(1.0)
    assert results["config"]["class_weights"] == [0.2, 0.8]
    assert results["config"]["head_type"] == hparams.split(".")[0]
