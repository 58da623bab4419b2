"""Classifier heads: (B, T, C) features plus relative lengths -> (B, 2) logits
ordered [spoof, bonafide]."""

from lobes.heads.aasist import AASISTHead
from lobes.heads.ffn import FFNHead
from lobes.heads.pooling import AttentiveStatsPooling

__all__ = ["AASISTHead", "FFNHead", "AttentiveStatsPooling"]
