"""Parts of a user's own, outside ``lobes``, named once in a copy of a
recipe YAML: they train, score, release and load as the recipe's own do."""

import csv
import json
import re
import textwrap

import pytest
from conftest import REPO, smoke_overrides

from lobes.evaluation.scores import read_scores

# A user's module: a head and a loss with the recipe's call conventions.
USER_PARTS = textwrap.dedent('''
    import torch
    import torch.nn.functional as F
    from torch import nn


    class MeanPoolHead(nn.Module):
        """Mean of the real frames, then Linear-ReLU-Linear to [spoof, bonafide]."""

        def __init__(self, input_size, hidden_size=16):
            super().__init__()
            self.hidden = nn.Linear(input_size, hidden_size)
            self.out = nn.Linear(hidden_size, 2)

        def forward(self, x, lengths=None):
            frames = x.shape[1]
            if lengths is None:
                lengths = torch.ones(x.shape[0], device=x.device)
            real = torch.round(lengths * frames).clamp(min=1)
            mask = (torch.arange(frames, device=x.device)[None, :] < real[:, None]).to(x.dtype)
            pooled = (x * mask[..., None]).sum(1) / real[:, None].to(x.dtype)
            return self.out(torch.relu(self.hidden(pooled)))


    class ScaledCrossEntropy(nn.Module):
        """Cross-entropy times ``scale``: its loss shows in the train log."""

        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, logits, labels):
            return self.scale * F.cross_entropy(logits.float(), labels)
''')


def user_yaml(tmp_path, replacements):
    """A copy of the ASVspoof2019 ffn.yaml with ``{old: new}`` text swapped."""
    text = open(f"{REPO}/recipes/ASVspoof2019/hparams/ffn.yaml", encoding="utf-8").read()
    for old, new in replacements.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "user.yaml"
    path.write_text(text)
    return path


def test_a_loss_of_ones_own_is_the_yaml_compute_cost(la_data, tiny_ssl, tmp_path, run_recipe):
    (tmp_path / "user_parts.py").write_text(USER_PARTS)
    hparams = user_yaml(tmp_path, {
        "compute_cost: !new:lobes.models.losses.WeightedCrossEntropy\n    class_weights: !ref <class_weights>\n":
        "compute_cost: !new:user_parts.ScaledCrossEntropy\n    scale: 1000\n",
    })
    output = tmp_path / "run"
    run_recipe("ASVspoof2019", str(hparams), tmp_path,
               *smoke_overrides(la_data, tiny_ssl, output, "--number_of_epochs=1"),
               env={"PYTHONPATH": str(tmp_path)})
    # Two classes: cross-entropy near log 2 = 0.69, so the scaled loss is in the hundreds.
    train_log = (output / "train_log.txt").read_text()
    losses = [float(v) for v in re.findall(r"loss: ([0-9.e+-]+)", train_log)]
    assert losses and all(300 < loss < 3000 for loss in losses), train_log
    assert json.loads((output / "results.json").read_text())["test_sets"]["eval"]["n_trials"] == 10
    assert len(read_scores(output / "scores" / "eval.txt")) == 10


def test_a_head_and_a_loss_of_ones_own_train_release_and_score(la_data, tiny_ssl, tmp_path, run_recipe, monkeypatch):
    """Named once each in the YAML; the release loads only when the class is
    passed in code, and then scores as the run did."""
    from lobes.inference.detector import SpoofDetector
    from lobes.inference.release import ReleaseError, write_release

    (tmp_path / "user_parts.py").write_text(USER_PARTS)
    hparams = user_yaml(tmp_path, {
        "head_class: !name:lobes.models.heads.FFNHead\n": "head_class: !name:user_parts.MeanPoolHead\n",
        "    head_class: !ref <head_class>\n    pooling: !ref <pooling>\n":
        "    head_class: !ref <head_class>\n    hidden_size: 8\n",
        "compute_cost: !new:lobes.models.losses.WeightedCrossEntropy\n    class_weights: !ref <class_weights>\n":
        "compute_cost: !new:user_parts.ScaledCrossEntropy\n    scale: 1.0\n",
    })
    output = tmp_path / "run"
    run_recipe("ASVspoof2019", str(hparams), tmp_path,
               *smoke_overrides(la_data, tiny_ssl, output, "--number_of_epochs=2"),
               env={"PYTHONPATH": str(tmp_path)})
    results = json.loads((output / "results.json").read_text())
    assert results["config"]["head_type"] == "MeanPoolHead"

    monkeypatch.syspath_prepend(str(tmp_path))
    from user_parts import MeanPoolHead

    not_lobes = (r"head 'MeanPoolHead' is not one of lobes' heads .* never imports: "
                 r"pass it, e.g. head_classes=\[MeanPoolHead\]")
    with pytest.raises(ValueError, match=not_lobes):
        SpoofDetector.from_output_folder(output)
    release = tmp_path / "release"
    write_release(output, release, head_classes=[MeanPoolHead])
    config = json.loads((release / "config.json").read_text())
    assert config["head"] == {"type": "MeanPoolHead", "options": {"hidden_size": 8}, "class": "user_parts.MeanPoolHead"}
    with pytest.raises(ReleaseError, match=r"config.json: " + not_lobes):
        SpoofDetector.from_pretrained(release)

    detector = SpoofDetector.from_pretrained(release, head_classes=[MeanPoolHead])
    with open(output / "manifests" / "eval.csv", newline="") as fin:
        rows = list(csv.DictReader(fin))
    run_scores = {r.utt_id: r.score for r in read_scores(output / "scores" / "eval.txt")}
    scored = detector.score_files([row["wav"] for row in rows])
    assert [r.score for r in scored] == pytest.approx([run_scores[row["ID"]] for row in rows], abs=1e-4)
