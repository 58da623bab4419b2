"""Learnable weighted sum over the stacked layer outputs of an SSL encoder.

Follows the paper: normalise the stacked layers (BatchNorm with the layers as
channels), then sum them with softmax-normalised weights that start uniform.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from lobes.models.precision import full_precision


class MaskedLayerBatchNorm(nn.BatchNorm2d):
    """BatchNorm over stacked layers (B, N, T, C) with the N layers as channels.

    Identical to ``nn.BatchNorm2d(N)`` when there is no padding. With a frame
    mask, the training statistics are computed over real frames only, so that
    padding never shifts the normalisation of real frames.

    Arguments
    ---------
    n_layers : int
        Number of stacked layers (the BatchNorm channels).

    Example
    -------
    >>> norm = MaskedLayerBatchNorm(3)
    >>> x = torch.randn(2, 3, 5, 4)
    >>> mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()
    >>> norm(x, mask).shape
    torch.Size([2, 3, 5, 4])
    """

    def __init__(self, n_layers):
        super().__init__(n_layers)

    def forward(self, x, mask=None):
        """Normalises ``x`` (B, N, T, C); ``mask`` (B, T) marks real frames."""
        if mask is None or not self.training or bool(mask.all()):
            return super().forward(x)
        valid = mask[:, None, :, None].to(x.dtype)
        count = valid.sum() * x.shape[-1]
        mean = (x * valid).sum(dim=(0, 2, 3)) / count
        centred = x - mean[None, :, None, None]
        var = (centred.pow(2) * valid).sum(dim=(0, 2, 3)) / count
        with torch.no_grad():
            unbiased = var * count / max(float(count) - 1.0, 1.0)
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(unbiased.detach(), self.momentum)
            self.num_batches_tracked += 1
        normed = centred / torch.sqrt(var + self.eps)[None, :, None, None]
        return normed * self.weight[None, :, None, None] + self.bias[None, :, None, None]


class WeightedLayerSum(nn.Module):
    """Softmax-weighted sum of normalised layer outputs.

    Arguments
    ---------
    n_layers : int
        Number of layers to fuse.
    norm : str
        ``"batch"`` (paper: BatchNorm with layers as channels, 2 parameters a
        layer), ``"layer"`` (parameter-free LayerNorm of each frame of each
        layer) or ``"none"``.

    Example
    -------
    >>> fusion = WeightedLayerSum(4)
    >>> fusion(torch.randn(2, 4, 10, 8)).shape
    torch.Size([2, 10, 8])
    >>> fusion.layer_weights()
    tensor([0.2500, 0.2500, 0.2500, 0.2500])
    """

    def __init__(self, n_layers, norm="batch"):
        super().__init__()
        if norm not in ("batch", "layer", "none"):
            raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {norm!r}")
        self.n_layers = n_layers
        self.norm_type = norm
        self.norm = MaskedLayerBatchNorm(n_layers) if norm == "batch" else None
        # Ones, not zeros, as in the paper; any constant gives uniform weights.
        self.weight_logits = nn.Parameter(torch.ones(n_layers))

    def layer_weights(self):
        """Returns the softmax-normalised layer weights, shape (N,), detached."""
        return F.softmax(self.weight_logits.detach(), dim=0)

    @full_precision  # fp32 even when the encoder runs in bf16/fp16
    def forward(self, layers, mask=None):
        """Fuses ``layers`` (B, N, T, C) into (B, T, C).

        ``mask`` (B, T), True on real frames, keeps padding out of the
        normalisation statistics; padded output frames are set to zero.
        """
        if layers.shape[1] != self.n_layers:
            raise ValueError(
                f"expected {self.n_layers} stacked layers, got {layers.shape[1]}"
            )
        if self.norm_type == "batch":
            layers = self.norm(layers, mask)
        elif self.norm_type == "layer":
            layers = F.layer_norm(layers, layers.shape[-1:])
        weights = F.softmax(self.weight_logits, dim=0)
        fused = torch.einsum("n,bntc->btc", weights, layers)
        if mask is not None:
            fused = fused * mask[:, :, None].to(fused.dtype)
        return fused
