"""LengthMaskedGroupNorm: the fast eager path against per-utterance nn.GroupNorm."""

import pytest
import torch
import torch.nn as nn

from lobes.models.ssl import LengthMaskedGroupNorm


def norms(channels=6, seed=0):
    torch.manual_seed(seed)
    masked = LengthMaskedGroupNorm(channels, channels)
    with torch.no_grad():
        masked.weight.normal_()
        masked.bias.normal_()
    plain = nn.GroupNorm(channels, channels)
    plain.load_state_dict(masked.state_dict())
    return masked, plain


def padded_batch(lengths, channels=6, frames=5000, offset=0.0):
    """Utterances of the given lengths, zero-padded to ``frames``."""
    generator = torch.Generator().manual_seed(1)
    x = torch.zeros(len(lengths), channels, frames)
    for b, n in enumerate(lengths):
        x[b, :, :n] = offset + 0.5 * torch.randn(channels, n, generator=generator)
    return x


@pytest.mark.parametrize("offset, atol", [(0.0, 1e-5), (300.0, 2e-4)])
def test_real_frames_match_each_utterance_alone(offset, atol):
    # Against nn.GroupNorm in float64 on each utterance alone. Offset 300:
    # channel means 600x their spread, where a one-pass sum/sum-of-squares
    # variance would lose most of its digits (fp32 nn.GroupNorm itself is
    # 1.6e-4 off there: the inputs hold no more digits).
    masked, plain = norms()
    plain = plain.double()
    lengths = [5000, 4001, 2049, 7]  # full, several 2048-frame chunks, a tiny one
    x = padded_batch(lengths, offset=offset)
    masked.lengths = torch.tensor(lengths)
    with torch.no_grad():
        out = masked(x)
        for b, n in enumerate(lengths):
            alone = plain(x[b : b + 1, :, :n].double())
            torch.testing.assert_close(out[b : b + 1, :, :n].double(), alone, rtol=0, atol=atol)


def test_fast_path_equals_the_traceable_masked_path_on_padding_too():
    masked, _ = norms()
    x = padded_batch([5000, 3000, 100])
    masked.lengths = torch.tensor([5000, 3000, 100])
    with torch.no_grad():
        torch.testing.assert_close(masked(x), masked._masked_traceable(x), rtol=1e-5, atol=1e-5)


def test_full_lengths_take_the_plain_group_norm():
    masked, plain = norms()
    x = padded_batch([5000, 5000])
    masked.lengths = torch.tensor([5000, 5000])
    with torch.no_grad():
        assert torch.equal(masked(x), plain(x))
    masked.lengths = None
    with torch.no_grad():
        assert torch.equal(masked(x), plain(x))


def test_bf16_autocast_keeps_fp32_statistics_and_the_input_dtype():
    masked, plain = norms()
    x = padded_batch([5000, 2500], offset=3.0).bfloat16()
    masked.lengths = torch.tensor([5000, 2500])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = masked(x)
    assert out.dtype == torch.bfloat16
    with torch.no_grad():
        alone = plain(x[1:, :, :2500].float())
    torch.testing.assert_close(out[1:, :, :2500].float(), alone, rtol=0, atol=5e-2)


def test_gradients_match_the_traceable_path():
    masked, _ = norms()
    x = padded_batch([5000, 1200])
    masked.lengths = torch.tensor([5000, 1200])
    grads = []
    for forward in (masked, masked._masked_traceable):
        masked.zero_grad()
        xg = x.clone().requires_grad_(True)
        (forward(xg) ** 2).mean().backward()
        grads.append((xg.grad, masked.weight.grad.clone()))
    for fast, reference in zip(*grads):
        assert torch.isfinite(fast).all()
        torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-6)
