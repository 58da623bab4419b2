"""Attentive statistics pooling over time, with length masks."""

import torch
import torch.nn as nn
from speechbrain.dataio.dataio import length_to_mask


def frame_mask(lengths, n_frames, device):
    """Boolean (B, T) mask of real frames from relative ``lengths``.

    ``None`` lengths mean every frame is real.

    Example
    -------
    >>> frame_mask(torch.tensor([1.0, 0.5]), 4, "cpu")
    tensor([[ True,  True,  True,  True],
            [ True,  True, False, False]])
    """
    if lengths is None:
        return None
    abs_lens = torch.round(lengths * n_frames).long().clamp(1, n_frames)
    return length_to_mask(abs_lens, max_len=n_frames, device=device).bool()


class AttentiveStatsPooling(nn.Module):
    """Attention-weighted mean and standard deviation over time.

    Frame scores are ``v . tanh(W h_t + b)``; weights are their softmax over
    the real frames. ``variant="correct"`` returns the weighted mean and the
    weighted standard deviation. ``variant="paper"`` reproduces the pooling of
    the paper's code: the weighted sum divided by T again, and a second moment
    that mixes weighted and unweighted terms, sqrt(sum_t w_t h_t^2 - mean^2).
    It is kept only to reproduce published numbers.

    Arguments
    ---------
    input_size : int
        Channels C of the input (B, T, C).
    variant : str
        ``"correct"`` or ``"paper"``.

    Example
    -------
    >>> pool = AttentiveStatsPooling(8)
    >>> pool(torch.randn(2, 10, 8), torch.tensor([1.0, 0.6])).shape
    torch.Size([2, 16])
    """

    def __init__(self, input_size, variant="correct", eps=1e-5):
        super().__init__()
        if variant not in ("correct", "paper"):
            raise ValueError(f"variant must be 'correct' or 'paper', got {variant!r}")
        self.variant = variant
        self.eps = eps
        self.attention = nn.Linear(input_size, input_size)
        self.context = nn.Parameter(torch.empty(input_size))
        nn.init.normal_(self.context, std=input_size**-0.5)

    def forward(self, x, lengths=None):
        """Pools (B, T, C) to (B, 2C): mean then standard deviation."""
        mask = frame_mask(lengths, x.shape[1], x.device)
        scores = torch.tanh(self.attention(x)) @ self.context
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        if self.variant == "correct":
            mean = (weights * x).sum(dim=1)
            var = (weights * (x - mean.unsqueeze(1)).pow(2)).sum(dim=1)
        else:
            n_frames = x.shape[1] if mask is None else mask.sum(dim=1, keepdim=True)
            mean = (weights * x).sum(dim=1) / n_frames
            var = (weights * x.pow(2)).sum(dim=1) - mean.pow(2)
        std = torch.sqrt(var.clamp(min=self.eps))
        return torch.cat([mean, std], dim=1)
