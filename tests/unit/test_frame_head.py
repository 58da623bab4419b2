"""The frame-level head: padding never changes the scores of real frames."""

import pytest
import torch

from lobes.models.heads.frame import FrameHead, frame_scores, utterance_logits


def test_frames_score_the_same_alone_and_padded():
    torch.manual_seed(0)
    head = FrameHead(8, hidden_size=16, kernel_size=5).eval()
    short = torch.randn(1, 7, 8)
    batch = torch.randn(2, 12, 8)
    batch[0, :7] = short[0]
    batch[0, 7:] = 0.0  # as LayerwiseSSL outputs padding
    alone = head(short, torch.ones(1))
    padded = head(batch, torch.tensor([7 / 12, 1.0]))
    assert torch.allclose(alone[0], padded[0, :7], atol=1e-6)
    assert torch.count_nonzero(padded[0, 7:]) == 0


def test_padding_reaches_real_frames_without_lengths():
    # The masking above is what keeps padding out: without lengths the
    # padded frames pass the bias of the MLP into the convolution.
    torch.manual_seed(0)
    head = FrameHead(8, hidden_size=16, kernel_size=5).eval()
    short = torch.randn(1, 7, 8)
    batch = torch.zeros(1, 12, 8)
    batch[0, :7] = short[0]
    assert not torch.allclose(head(short)[0], head(batch)[0, :7], atol=1e-6)


def test_utterance_pooling_ignores_padding():
    logits = torch.zeros(2, 4, 2)
    logits[:, :, 1] = torch.tensor([[1.0, -2.0, 3.0, 0.0], [1.0, 2.0, -9.0, -9.0]])
    lens = torch.tensor([1.0, 0.5])
    assert frame_scores(logits).shape == (2, 4)
    assert utterance_logits(logits, lens)[:, 1].tolist() == [-2.0, 1.0]
    assert utterance_logits(logits, lens, "mean")[:, 1].tolist() == [0.5, 1.5]


def test_a_frame_head_is_never_read_as_utterance_logits():
    """The detector's scoring graph takes column 1 of (B, 2) logits: a frame
    head's (B, T, 2) would give frame 1's pair, so it is refused by name."""
    from lobes.inference.detector import ScoringGraph
    from lobes.models.heads.frame import UtteranceFrameHead

    class Features(torch.nn.Module):  # stands in for the SSL: (B, T, C) features and lengths
        def forward(self, wavs, wav_lens):
            return wavs[:, :, None].expand(-1, -1, 8), wav_lens

    wavs = torch.randn(2, 30)
    with pytest.raises(ValueError, match=r"FrameHead gives outputs of shape \(2, 30, 2\)"):
        ScoringGraph(Features(), FrameHead(8))(wavs)
    assert ScoringGraph(Features(), UtteranceFrameHead(8))(wavs).shape == (2,)
