"""Parts of a user's own, outside ``lobes``, named once in a copy of a
recipe YAML: they train, score and load as the recipe's own do."""

import json
import re
import textwrap

from conftest import REPO, smoke_overrides
from lobes.evaluation.scores import read_scores

# A user's module: a loss with the recipe's call convention.
USER_PARTS = textwrap.dedent('''
    import torch.nn.functional as F
    from torch import nn


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
