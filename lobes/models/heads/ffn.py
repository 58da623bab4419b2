"""The paper's feed-forward classifier head."""

import torch.nn as nn

from lobes.models.heads.pooling import AttentiveStatsPooling
from lobes.models.precision import full_precision


class FFNHead(nn.Module):
    """Frame-wise MLP, attentive statistics pooling, then an MLP classifier.

    Linear(C,128)-ReLU-Linear(128,128)-ReLU, attentive statistics pooling to
    256, Linear(256,128)-ReLU-Linear(128,2). Trainable parameters: 164,738
    for C = 768 and 197,506 for C = 1024 (with a fused 12- or 24-layer
    encoder this gives the paper's 164,774 and 197,578).

    Arguments
    ---------
    input_size : int
        Channels C of the fused SSL features.
    hidden_size : int
        Width of the MLPs (128 in the paper).
    pooling : str
        ``"correct"`` attentive statistics pooling (default) or ``"paper"``
        (the paper code's variant, see ``AttentiveStatsPooling``).
    dropout : float
        Dropout before the classifier (0 in the paper).

    Example
    -------
    >>> import torch
    >>> head = FFNHead(768)
    >>> head(torch.randn(2, 50, 768), torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 2])
    >>> sum(p.numel() for p in head.parameters())
    164738
    """

    def __init__(self, input_size, hidden_size=128, pooling="correct", dropout=0.0):
        super().__init__()
        self.frame_mlp = nn.Sequential(
            nn.Linear(input_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
        )
        self.pooling = AttentiveStatsPooling(hidden_size, variant=pooling)
        self.classifier = nn.Sequential(
            nn.Linear(2 * hidden_size, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, 2),
        )

    @full_precision  # fp32 even when the encoder runs in bf16/fp16
    def forward(self, x, lengths=None):
        """Maps features (B, T, C) and relative lengths (B,) to logits (B, 2)
        ordered [spoof, bonafide]."""
        return self.classifier(self.pooling(self.frame_mlp(x), lengths))
