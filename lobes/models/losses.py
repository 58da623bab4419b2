"""Training losses, named in a recipe YAML as ``compute_cost``.

A loss is called as ``compute_cost(logits, labels)``: logits (B, 2) ordered
[spoof, bonafide] and labels (B,) with 0 for spoof and 1 for bona fide; it
returns the scalar loss. Swap it in the YAML, as SpeechBrain recipes do::

    compute_cost: !new:lobes.models.losses.WeightedCrossEntropy
        class_weights: !ref <class_weights>
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from lobes.utils.choices import check_class_weights


class WeightedCrossEntropy(nn.Module):
    """Cross-entropy with one weight per class (the paper's loss).

    The weights live in a buffer that follows the logits' device, and the
    loss is computed in float32 whatever the autocast dtype of the logits, so
    that a bf16/fp16 run sums its loss as an fp32 run does.

    Arguments
    ---------
    class_weights : list of float
        ``[spoof, bonafide]`` weights, both positive and finite (the paper:
        [0.1, 0.9] on ASVspoof 2019 LA).

    Example
    -------
    >>> cost = WeightedCrossEntropy([0.1, 0.9])
    >>> logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    >>> round(float(cost(logits, torch.tensor([0, 1]))), 4)
    0.0486
    >>> WeightedCrossEntropy([0.5])
    Traceback (most recent call last):
    ...
    ValueError: class_weights=[0.5] must list 2 positive weights, [spoof, bonafide]
    """

    def __init__(self, class_weights):
        super().__init__()
        check_class_weights(class_weights)
        self.register_buffer("weight", torch.tensor(list(class_weights), dtype=torch.float), persistent=False)

    def forward(self, logits, labels):
        """The weighted mean cross-entropy of ``logits`` (B, 2) against ``labels`` (B,)."""
        return F.cross_entropy(logits.float(), labels, weight=self.weight.to(logits.device))
