"""A frame-level head for localisation: one [spoof, bonafide] logit pair per frame."""

import torch
import torch.nn as nn

from lobes.models.heads.pooling import frame_mask
from lobes.models.precision import full_precision


class FrameHead(nn.Module):
    """Scores every frame of fused SSL features.

    Frame-wise Linear(C,h)-ReLU-Linear(h,h)-ReLU (as in the FFN head), then a
    1-D convolution over time for a little local context (kernel 5 = +-40 ms
    at 20 ms frames), ReLU, and Linear(h,2). Padded frames are zeroed before
    the convolution, so a real frame next to padding sees exactly the zero
    padding it would see alone: scores do not depend on the batch.

    Arguments
    ---------
    input_size : int
        Channels C of the fused SSL features.
    hidden_size : int
        Width of the layers.
    kernel_size : int
        Odd temporal kernel of the convolution; 1 makes the head frame-wise.
    dropout : float
        Dropout before the output layer.

    Example
    -------
    >>> head = FrameHead(32)
    >>> head(torch.randn(2, 50, 32), torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 50, 2])
    """

    def __init__(self, input_size, hidden_size=128, kernel_size=5, dropout=0.0):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.frame_mlp = nn.Sequential(
            nn.Linear(input_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
        )
        self.context = nn.Conv1d(hidden_size, hidden_size, kernel_size, padding=kernel_size // 2)
        self.output = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_size, 2))

    @full_precision  # fp32 even when the encoder runs in bf16/fp16
    def forward(self, x, lengths=None):
        """Maps features (B, T, C) and relative lengths (B,) to frame logits
        (B, T, 2) ordered [spoof, bonafide]; padded frames get zeros."""
        mask = frame_mask(lengths, x.shape[1], x.device)
        hidden = self.frame_mlp(x)
        if mask is not None:
            hidden = hidden * mask[:, :, None].to(hidden.dtype)
        hidden = self.context(hidden.transpose(1, 2)).transpose(1, 2)
        logits = self.output(hidden)
        if mask is not None:
            logits = logits * mask[:, :, None].to(logits.dtype)
        return logits


def frame_scores(frame_logits):
    """Bona fide log-odds of each frame, (B, T): higher = more bona fide.

    The log-odds, not the bona fide logit alone, because frames of many
    utterances are pooled into one EER and the log-odds is the quantity a
    softmax classifier calibrates.

    Example
    -------
    >>> frame_scores(torch.tensor([[[0.5, 2.0]]]))
    tensor([[1.5000]])
    """
    return frame_logits[..., 1] - frame_logits[..., 0]


def utterance_logits(frame_logits, lengths=None, reduce="min"):
    """Utterance logits (B, 2) from frame logits, over real frames only.

    An utterance is spoof if any part of it is, so ``"min"`` takes the least
    bona fide frame; ``"mean"`` averages the frame log-odds. The result is
    ``[0, s]`` with ``s`` the pooled log-odds, so that cross-entropy on it is
    the logistic loss on ``s`` and the usual score (the bona fide logit) is ``s``.

    Example
    -------
    >>> logits = torch.tensor([[[0.0, 1.0], [0.0, -2.0], [0.0, 9.0]]])
    >>> utterance_logits(logits, torch.tensor([2 / 3])).tolist()
    [[0.0, -2.0]]
    >>> utterance_logits(logits, torch.tensor([2 / 3]), reduce="mean").tolist()
    [[0.0, -0.5]]
    """
    scores = frame_scores(frame_logits)
    mask = frame_mask(lengths, scores.shape[1], scores.device)
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    if reduce == "min":
        pooled = scores.masked_fill(~mask, float("inf")).amin(dim=1)
    elif reduce == "mean":
        pooled = (scores * mask).sum(dim=1) / mask.sum(dim=1)
    else:
        raise ValueError(f"reduce must be 'min' or 'mean', got {reduce!r}")
    return torch.stack([torch.zeros_like(pooled), pooled], dim=1)


class UtteranceFrameHead(FrameHead):
    """A trained ``FrameHead`` that gives utterance logits: its frame logits
    pooled over real frames as the segment recipe pools them
    (``utterance_logits``), so that a localisation model scores utterances
    through the same detector, export and release paths as any other head.
    Same parameters and state-dict keys as ``FrameHead``.

    Arguments
    ---------
    input_size, hidden_size, kernel_size, dropout
        As for ``FrameHead``.
    pooling : str
        ``"min"`` or ``"mean"``: the recipe's ``utterance_pooling``.

    Example
    -------
    >>> frame = FrameHead(32)
    >>> head = UtteranceFrameHead(32, pooling="min")
    >>> _ = head.load_state_dict(frame.state_dict())
    >>> x, lens = torch.randn(2, 50, 32), torch.tensor([1.0, 0.5])
    >>> torch.equal(head(x, lens), utterance_logits(frame(x, lens), lens, "min"))
    True
    >>> torch.equal(UtteranceFrameHead.from_frame_head(frame)(x, lens), head(x, lens))
    True
    """

    def __init__(self, input_size, hidden_size=128, kernel_size=5, dropout=0.0, pooling="min"):
        super().__init__(input_size, hidden_size, kernel_size, dropout)
        if pooling not in ("min", "mean"):
            raise ValueError(f"pooling must be 'min' or 'mean', got {pooling!r}")
        self.pooling = pooling

    @classmethod
    def from_frame_head(cls, head, pooling="min"):
        """An ``UtteranceFrameHead`` with the weights of a trained ``FrameHead``
        (on its device, in its train/eval mode)."""
        first, context = head.frame_mlp[0], head.context
        pooled = cls(first.in_features, first.out_features, context.kernel_size[0],
                     head.output[1].p, pooling)
        pooled.load_state_dict(head.state_dict())
        return pooled.to(first.weight.device).train(head.training)

    def forward(self, x, lengths=None):
        """Features (B, T, C) and relative lengths (B,) -> (B, 2) logits
        ``[0, pooled bona fide log-odds]``."""
        return utterance_logits(super().forward(x, lengths), lengths, self.pooling)
