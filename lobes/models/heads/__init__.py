"""Classifier heads: (B, T, C) features plus relative lengths -> (B, 2) logits
ordered [spoof, bonafide]; ``registry`` names them."""

from lobes.models.heads.aasist import AASISTHead
from lobes.models.heads.ffn import FFNHead
from lobes.models.heads.pooling import AttentiveStatsPooling
from lobes.models.heads.registry import HEADS, head_name, resolve_head

__all__ = ["AASISTHead", "FFNHead", "AttentiveStatsPooling", "HEADS", "head_name", "resolve_head"]
