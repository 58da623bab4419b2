"""Layer fusion and classifier heads."""

import pytest
import torch
import torch.nn as nn

from lobes.models.heads import AASISTHead, AttentiveStatsPooling, FFNHead
from lobes.models.heads.aasist import ResidualBlock
from lobes.models.layer_sum import MaskedLayerBatchNorm, WeightedLayerSum


def n_params(*modules):
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    "channels, layers, ffn, aasist",
    [(768, 12, 164_774, 414_510), (1024, 24, 197_578, 447_314)],
)
def test_parameter_counts_match_the_papers_models(channels, layers, ffn, aasist):
    fusion = WeightedLayerSum(layers)
    assert n_params(FFNHead(channels), fusion) == ffn
    assert n_params(AASISTHead(channels), fusion) == aasist
    assert n_params(WeightedLayerSum(layers + 1)) - n_params(fusion) == 3


def test_fusion_starts_uniform_and_sums_with_softmax_weights():
    fusion = WeightedLayerSum(3, norm="none")
    assert torch.equal(fusion.layer_weights(), torch.full((3,), 1 / 3))
    layers = torch.randn(2, 3, 5, 4)
    with torch.no_grad():
        fusion.weight_logits.copy_(torch.tensor([0.0, 1.0, 2.0]))
    weights = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    expected = sum(weights[i] * layers[:, i] for i in range(3))
    torch.testing.assert_close(fusion(layers), expected)
    assert fusion.weight_logits.requires_grad


def test_layer_norm_option_normalises_each_frame():
    fused = WeightedLayerSum(2, norm="layer")(100 + 5 * torch.randn(1, 2, 6, 16))
    assert fused.mean(-1).abs().max() < 1e-4


def test_masked_batchnorm_equals_batchnorm2d_without_padding():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 7, 5)
    ours, reference = MaskedLayerBatchNorm(4), nn.BatchNorm2d(4)
    torch.testing.assert_close(ours(x), reference(x))
    torch.testing.assert_close(ours.running_var, reference.running_var)


def test_masked_batchnorm_ignores_padded_frames():
    torch.manual_seed(0)
    real = torch.randn(1, 2, 5, 3)
    padded = torch.cat([real, 1e3 * torch.ones(1, 2, 4, 3)], dim=2)
    mask = torch.tensor([[True] * 5 + [False] * 4])
    ours, reference = MaskedLayerBatchNorm(2), nn.BatchNorm2d(2)
    torch.testing.assert_close(ours(padded, mask)[:, :, :5], reference(real))
    torch.testing.assert_close(ours.running_mean, reference.running_mean)
    torch.testing.assert_close(ours.running_var, reference.running_var)


def test_correct_pooling_is_the_weighted_mean_and_std():
    pool = AttentiveStatsPooling(1)
    with torch.no_grad():
        pool.attention.weight.zero_()
        pool.attention.bias.zero_()  # equal attention: plain mean and std
    x = torch.tensor([[[1.0], [3.0], [5.0], [100.0]]])
    out = pool(x, torch.tensor([0.75]))  # the last frame is padding
    torch.testing.assert_close(out, torch.tensor([[3.0, (8 / 3) ** 0.5]]))


def test_paper_pooling_variant_is_selectable_and_differs():
    torch.manual_seed(0)
    x = torch.randn(2, 9, 8)
    correct = AttentiveStatsPooling(8)
    paper = AttentiveStatsPooling(8, variant="paper")
    paper.load_state_dict(correct.state_dict())
    mean_correct, mean_paper = correct(x)[:, :8], paper(x)[:, :8]
    torch.testing.assert_close(mean_paper, mean_correct / 9)  # divided by T again
    with pytest.raises(ValueError, match="variant"):
        AttentiveStatsPooling(8, variant="other")


@pytest.mark.parametrize("head_class", [FFNHead, AASISTHead])
def test_heads_ignore_padding_when_scoring(head_class):
    torch.manual_seed(0)
    head = head_class(16).eval()
    real = torch.randn(1, 10, 16)
    padded = torch.cat([real, torch.randn(1, 6, 16)], dim=1)
    torch.testing.assert_close(head(padded, torch.tensor([10 / 16])), head(real))


def test_heads_output_two_logits_for_short_and_long_inputs():
    torch.manual_seed(0)
    for head in (FFNHead(24), AASISTHead(24)):
        head.eval()
        for frames in (3, 10, 201):
            assert head(torch.randn(2, frames, 24)).shape == (2, 2)


def test_aasist_spectral_attention_ignores_padded_frames():
    torch.manual_seed(0)
    head = AASISTHead(24).eval()
    x = torch.randn(1, 30, 24)
    # Padding is excluded from the attention over time, so logits change
    # less with a mask than without; and the mask must change something.
    padded = torch.cat([x, 50 * torch.ones(1, 30, 24)], dim=1)
    masked = head(padded, torch.tensor([0.5]))
    unmasked = head(padded)
    assert not torch.allclose(masked, unmasked)


def test_residual_block_uses_its_pre_activation():
    torch.manual_seed(0)
    block = ResidualBlock(4, 4).eval()
    x = torch.randn(1, 4, 6, 5)
    before = block(x)
    with torch.no_grad():
        block.pre_activation[0].bias.add_(3.0)  # changes BN(x) only
    assert not torch.allclose(block(x), before)
