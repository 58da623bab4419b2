"""The frame-level head: padding never changes the scores of real frames."""

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
