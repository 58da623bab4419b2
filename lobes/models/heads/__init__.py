"""Classifier heads: (B, T, C) features plus relative lengths -> (B, 2) logits
ordered [spoof, bonafide]."""

from lobes.models.heads.aasist import AASISTHead
from lobes.models.heads.ffn import FFNHead
from lobes.models.heads.pooling import AttentiveStatsPooling

__all__ = ["AASISTHead", "FFNHead", "AttentiveStatsPooling"]
