"""Multi-depth training: one encoder pass, every depth as if trained alone."""

import copy
import os
import sys

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from lobes.dataio.dataset import make_datasets
from lobes.evaluation.scores import read_scores
from lobes.models.assembly import MultiDepthSSL, head_per_depth, layerwise_ssl
from lobes.models.branches import plan_branches
from lobes.models.heads import FFNHead
from lobes.models.ssl import LayerwiseSSL
from lobes.testing.synthetic import make_synthetic_la
from lobes.training.brain import SpoofBrain
from lobes.training.branched import brain_class_for

RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "ASVspoof2019")
sys.path.insert(0, RECIPE)
from asvspoof2019_prepare import prepare_asvspoof2019  # noqa: E402

DEPTHS = [1, 3]


def test_multi_depth_fusions_see_prefixes_of_one_encoder_pass(tiny_models):
    path = tiny_models[("wav2vec2", True)]
    multi = MultiDepthSSL(path, depths=[3, 1]).eval()
    assert multi.depths == [1, 3] and len(multi.encoder.model.encoder.layers) == 3
    wavs = 0.1 * torch.randn(2, 8000)
    with torch.no_grad():
        outputs = multi(wavs, torch.tensor([1.0, 0.6]))
        for depth in DEPTHS:
            single = LayerwiseSSL(path, n_layers=depth).eval()
            single.fusion.load_state_dict(multi.fusions[f"N{depth}"].state_dict())
            expected, _ = single(wavs, torch.tensor([1.0, 0.6]))
            torch.testing.assert_close(outputs[f"N{depth}"][0], expected, rtol=1e-4, atol=1e-5)
    assert isinstance(layerwise_ssl(path, 2), LayerwiseSSL)
    assert isinstance(layerwise_ssl(path, [2, 4]), MultiDepthSSL)
    with pytest.raises(ValueError, match="frozen SSL"):
        MultiDepthSSL(path, depths=[1, 2], freeze=False)
    # The heads follow the plan the encoder was built from, and refuse another.
    assert sorted(head_per_depth(multi, FFNHead, branches=multi.branches)) == ["N1", "N3"]
    with pytest.raises(ValueError, match="differs from the encoder's"):
        head_per_depth(multi, FFNHead, branches=plan_branches(3, "ffn", 1))  # a single run's plan


def load_hparams(output, data, ssl_path, n_layers, yaml="ffn.yaml", **extra):
    overrides = {
        "data_folder": str(data),
        "output_folder": str(output),
        "manifest_folder": str(data / "manifests"),
        "ssl_source": ssl_path,
        "n_layers": n_layers,
        "number_of_epochs": 3,
        "batch_size": 4,
        "max_samples": 16000,
        "num_workers": 0,
        "lr": 0.001,
        **extra,
    }
    with open(os.path.join(RECIPE, "hparams", yaml), encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, overrides)


def train_and_score(hparams, init=None):
    datasets = make_datasets(hparams)
    if init is not None:
        hparams["ssl"].fusion.load_state_dict(init[0])
        hparams["head"].load_state_dict(init[1])
    brain = brain_class_for(SpoofBrain, hparams)(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        checkpointer=hparams["checkpointer"],
        run_opts={"device": "cpu"},
    )
    brain.fit(brain.hparams.epoch_counter, datasets["train"], datasets["dev"],
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["test_dataloader_opts"])
    brain.evaluate_set(datasets["eval"], "eval", hparams["test_dataloader_opts"])
    return brain


def test_each_depth_matches_its_own_single_depth_run(tmp_path, tiny_ssl):
    counts = {"train": 6, "dev": 4, "eval": 4}
    make_synthetic_la(tmp_path, counts, counts, seconds=(0.6, 1.1), seed=7)
    prepare_asvspoof2019(str(tmp_path), str(tmp_path / "manifests"))

    hparams = load_hparams(tmp_path / "multi", tmp_path, tiny_ssl, DEPTHS)
    init = {
        name: (copy.deepcopy(hparams["ssl"].fusions[name].state_dict()),
               copy.deepcopy(hparams["head"][name].state_dict()))
        for name in ("N1", "N3")
    }
    train_and_score(hparams)

    for depth in DEPTHS:
        name = f"N{depth}"
        single = load_hparams(tmp_path / name, tmp_path, tiny_ssl, depth)
        train_and_score(single, init[name])
        multi_scores = read_scores(tmp_path / "multi" / name / "scores" / "eval.txt")
        single_scores = read_scores(tmp_path / name / "scores" / "eval.txt")
        assert [r.utt_id for r in multi_scores] == [r.utt_id for r in single_scores]
        for ours, theirs in zip(multi_scores, single_scores):
            assert ours.score == pytest.approx(theirs.score, abs=1e-4)
        multi_results = (tmp_path / "multi" / name / "results.json").read_text()
        assert f'"n_layers": {depth}' in multi_results
        assert (tmp_path / "multi" / name / "save").is_dir()
