"""PartialSpoof recipe: masking of padded batches and smoke tests of both tasks."""

import importlib.util
import json
import os
import re
import sys

import pytest
import speechbrain as sb
import torch
from conftest import assert_calibrated
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch

from lobes.dataio.prepare import read_manifest
from lobes.evaluation.scores import read_scores
from lobes.evaluation.segments import read_segment_scores

RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "PartialSpoof")
sys.path.insert(0, RECIPE)
from partialspoof_prepare import prepare_partialspoof  # noqa: E402
from synthetic_partialspoof import make_partialspoof_tree  # noqa: E402

COUNTS = {"train": (3, 5), "dev": (2, 3), "eval": (2, 3)}
RESOLUTIONS_MS = [20, 40, 80, 160, 320, 640]


def load_train_module():
    """The recipe's train.py as a module (its main block does not run)."""
    spec = importlib.util.spec_from_file_location("partialspoof_train", os.path.join(RECIPE, "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ps_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("partialspoof")
    make_partialspoof_tree(folder, COUNTS, seconds=(0.4, 1.6), seed=1)
    return folder


@pytest.fixture(scope="module")
def large_ssl(tiny_models):
    """A tiny "large"-form model (base forms are checked in tests/unit/test_ssl.py)."""
    return tiny_models[("wav2vec2", True)]


def overrides(data, ssl, output, *extra):
    return (
        f"--data_folder={data}",
        f"--output_folder={output}",
        f"--ssl_source={ssl}",
        "--n_layers=2",
        "--batch_size=3",
        "--num_workers=0",
        "--number_of_epochs=1",
        *extra,
    )


def protocol_ids(data, split):
    path = data / "database" / "protocols" / "PartialSpoof_LA_cm_protocols" / f"PartialSpoof.LA.cm.{split}.trl.txt"
    return sorted(line.split()[1] for line in path.read_text().splitlines())


def padding_report(log):
    """(sorted %, shuffled %) from the recipe's padding log line."""
    match = re.search(r"([\d.]+)% padded frames sorted, ([\d.]+)% shuffled", log)
    assert match, "the recipe did not report the padding of its batches"
    return float(match.group(1)), float(match.group(2))


def build_brain(hparams_file, data, ssl, output):
    """Hparams, datasets and Brain of the recipe, loaded in this process."""
    train = load_train_module()
    with open(os.path.join(RECIPE, "hparams", hparams_file), encoding="utf-8") as fin:
        # As a YAML string, so that overrides are typed as on the command line.
        args = "\n".join(arg[2:].replace("=", ": ", 1) for arg in overrides(data, ssl, output))
        hparams = load_hyperpyyaml(fin, args)
    prepare_partialspoof(str(data), hparams["manifest_folder"])
    datasets = train.dataio_prep(hparams)
    brain = train.brain_class(hparams["task"])(
        modules=hparams["modules"], hparams=hparams, run_opts={"device": "cpu"}
    )
    brain.modules.eval()
    return brain, datasets


def alone_and_padded(brain, dataset):
    """Outputs for the shortest utterance alone and padded beside the longest."""
    items = [dataset[i] for i in range(len(dataset))]
    items.sort(key=lambda item: item["sig"].shape[0])
    short, long = items[0], items[-1]
    assert long["sig"].shape[0] > 1.5 * short["sig"].shape[0]  # real padding
    with torch.no_grad():
        alone = brain.compute_forward(PaddedBatch([short]), sb.Stage.TEST)
        padded = brain.compute_forward(PaddedBatch([short, long]), sb.Stage.TEST)
    return alone, padded


def test_utterance_scores_alone_equal_padded(ps_data, large_ssl, tmp_path):
    brain, datasets = build_brain("ffn.yaml", ps_data, large_ssl, tmp_path / "ffn")
    alone, padded = alone_and_padded(brain, datasets["eval"])
    # One model: compute_forward gives its logits (B, 2).
    assert padded.shape == (2, 2)
    assert torch.allclose(alone[0], padded[0], atol=1e-5)


def test_frame_scores_alone_equal_padded(ps_data, large_ssl, tmp_path):
    brain, datasets = build_brain("segment.yaml", ps_data, large_ssl, tmp_path / "seg")
    alone, padded = alone_and_padded(brain, datasets["dev"])
    # The segment task's compute_forward gives (frame logits, relative lengths).
    (alone, _), (padded, padded_lens) = alone, padded
    n_frames = alone.shape[1]
    assert padded.shape[1] > n_frames
    assert torch.allclose(padded_lens[0] * padded.shape[1], torch.tensor(float(n_frames)))
    assert torch.allclose(alone[0], padded[0, :n_frames], atol=1e-5)
    assert torch.count_nonzero(padded[0, n_frames:]) == 0
    # segment.yaml trains one model: branch lists are refused, not ignored.
    with pytest.raises(ValueError, match=r"one model per run.*\['heads'\]"):
        type(brain)(modules=dict(brain.modules.items()), hparams={**vars(brain.hparams), "heads": ["ffn"]},
                    run_opts={"device": "cpu"})


# aasist.yaml: trained by its recipe-test row (tests/recipes/PartialSpoof.csv); the
# checks below need one head only.
@pytest.mark.parametrize("hparams", ["ffn.yaml"])
def test_utterance_detection_smoke(ps_data, tiny_ssl, tmp_path, run_recipe, hparams):
    output = tmp_path / "run"
    log = run_recipe("PartialSpoof", hparams, tmp_path, *overrides(ps_data, tiny_ssl, output))
    sorted_pct, shuffled_pct = padding_report(log)
    assert sorted_pct < shuffled_pct
    results = json.loads((output / "results.json").read_text())
    assert results["config"]["train_crop"] == results["config"]["eval_crop"] == "full"
    assert results["config"]["class_weights"] == [0.1, 0.9]
    for split in ("dev", "eval"):
        records = read_scores(output / "scores" / f"{split}.txt")
        assert sorted(r.utt_id for r in records) == protocol_ids(ps_data, split)
        metrics = results["test_sets"][split]
        assert 0.0 <= metrics["eer"] <= 100.0
        assert (metrics["n_bonafide"], metrics["n_spoof"]) == COUNTS[split]
        assert set(metrics["eer_by_attack"]) == {"CON"}
    assert_calibrated(results, output, "eval")


def test_localisation_smoke(ps_data, tiny_ssl, tmp_path, run_recipe):
    output = tmp_path / "run"
    log = run_recipe("PartialSpoof", "segment.yaml", tmp_path, *overrides(ps_data, tiny_ssl, output))
    assert "segment_eer" in log
    results = json.loads((output / "results.json").read_text())
    manifest = {row["ID"]: row for row in read_manifest(output / "manifests" / "eval.csv")}
    metrics = results["test_sets"]["eval"]
    assert list(metrics["segment_eer"]) == [f"{ms}ms" for ms in RESOLUTIONS_MS]
    assert all(0.0 <= eer <= 100.0 for eer in metrics["segment_eer"].values())
    assert 0.0 <= metrics["eer"] <= 100.0  # utterance EER from frame scores
    for ms in RESOLUTIONS_MS:
        scores = read_segment_scores(output / "scores" / f"eval_segments_{ms}ms.txt")
        assert sorted(scores) == protocol_ids(ps_data, "eval")
        for utt_id, segment_scores in scores.items():
            assert len(segment_scores) == len(manifest[utt_id][f"seglab_{ms}"])
    # One utterance score a trial, derived from the same frame scores.
    assert len(read_scores(output / "scores" / "eval.txt")) == sum(COUNTS["eval"])
    assert "dev" in results["test_sets"]

    # The localisation model is a detector too, from its run folder and from a
    # release: the frame scores pooled as trained give the recipe's utterance scores.
    from lobes.inference.detector import SpoofDetector
    from lobes.inference.release import verify_release, write_release

    expected = {r.utt_id: r.score for r in read_scores(output / "scores" / "eval.txt")}
    detector = SpoofDetector.from_output_folder(output)
    for utt_id, score in expected.items():
        assert detector.score_file(manifest[utt_id]["wav"]).score == pytest.approx(score, abs=1e-4)
    release = tmp_path / "release"
    write_release(output, release)
    config = json.loads((release / "config.json").read_text())
    assert config["head"] == {"type": "frame", "options": {"kernel_size": 5, "pooling": "min"},
                              "class": "lobes.models.heads.frame.UtteranceFrameHead"}
    assert "the utterance score is their minimum" in (release / "README.md").read_text()
    _, failures = verify_release(str(release))
    assert failures == []
    utt_id = sorted(expected)[0]
    released = SpoofDetector.from_pretrained(str(release))
    assert released.score_file(manifest[utt_id]["wav"]).score == pytest.approx(expected[utt_id], abs=1e-4)
    # From the YAML and a checkpoint too (the frame head pooled, never frame 1's pair).
    templated = SpoofDetector.from_hparams(output / "hyperparams.yaml", output / "save")
    assert templated.score_file(manifest[utt_id]["wav"]).score == pytest.approx(expected[utt_id], abs=1e-4)

    # The model scores whole files: without --window, the timeline row of a
    # 6-s file spans it all (not the 4.04-s max_samples).
    import numpy as np
    import soundfile as sf

    from lobes.evaluation.timeline import read_timeline
    from lobes.inference import cli as detect

    audio, rate = sf.read(manifest[utt_id]["wav"])
    long_file = tmp_path / "long.wav"
    sf.write(long_file, np.resize(audio, 6 * rate), rate)
    timeline = tmp_path / "timeline.csv"
    assert detect.main([str(release), str(long_file), "--timeline", str(timeline), "--no-progress",
                        "--num-workers", "0"]) == 0
    (row,) = read_timeline(timeline)
    assert (row["start"], row["end"]) == (0.0, 6.0)
