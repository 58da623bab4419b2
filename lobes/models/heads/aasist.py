"""AASIST graph-attention back-end for SSL features.

Written from the AASIST paper (Jung et al., ICASSP 2022) in the SSL form of
Tak et al. (Odyssey 2022): a 2-D residual encoder over (feature, time), two
node sets (spectral and temporal) from attention over each axis, graph
attention and graph pooling on each, then heterogeneous stacked graph
attention with a master node, in two parallel branches.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from lobes.models.heads.pooling import frame_mask
from lobes.models.precision import full_precision


class ResidualBlock(nn.Module):
    """Pre-activation 2-D residual block.

    The public SSL-AASIST code computes BN+SELU of the input and then
    convolves the raw input instead; here the pre-activation is used.
    """

    def __init__(self, in_channels, out_channels, first=False):
        super().__init__()
        self.pre_activation = (
            nn.Identity() if first else nn.Sequential(nn.BatchNorm2d(in_channels), nn.SELU())
        )
        # (2, 3) kernels with (1, 1) then (0, 1) padding keep both axes' sizes.
        self.conv1 = nn.Conv2d(in_channels, out_channels, (2, 3), padding=(1, 1))
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, (2, 3), padding=(0, 1))
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, (1, 3), padding=(0, 1))
            if in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x):
        """(B, C_in, F, T) -> (B, C_out, F, T)."""
        out = self.conv1(self.pre_activation(x))
        out = self.conv2(F.selu(self.bn2(out)))
        return out + self.shortcut(x)


def _pairwise_products(nodes):
    """(B, n, D) -> (B, n, n, D) with entry [i, j] = nodes_i * nodes_j."""
    return nodes.unsqueeze(2) * nodes.unsqueeze(1)


class GraphAttention(nn.Module):
    """Graph attention over a fully connected node set (AASIST's GAT layer)."""

    def __init__(self, in_dim, out_dim, temperature=1.0):
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = nn.Parameter(torch.empty(out_dim, 1))
        nn.init.xavier_normal_(self.att_weight)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(0.2)
        self.temperature = temperature

    def forward(self, nodes):
        """(B, n, in_dim) -> (B, n, out_dim)."""
        nodes = self.input_drop(nodes)
        scores = torch.tanh(self.att_proj(_pairwise_products(nodes))) @ self.att_weight
        # AASIST normalises over the first node axis.
        att = torch.softmax(scores.squeeze(-1) / self.temperature, dim=-2)
        out = self.proj_with_att(att @ nodes) + self.proj_without_att(nodes)
        return F.selu(self.bn(out.transpose(1, 2)).transpose(1, 2))


class HeterogeneousGraphAttention(nn.Module):
    """Graph attention over two node types plus a master node (AASIST's HS-GAL)."""

    def __init__(self, in_dim, out_dim, temperature=1.0):
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_proj_master = nn.Linear(in_dim, out_dim)
        self.att_weight11 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weight22 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weight12 = nn.Parameter(torch.empty(out_dim, 1))
        self.att_weight_master = nn.Parameter(torch.empty(out_dim, 1))
        for weight in (
            self.att_weight11,
            self.att_weight22,
            self.att_weight12,
            self.att_weight_master,
        ):
            nn.init.xavier_normal_(weight)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_att_master = nn.Linear(in_dim, out_dim)
        self.proj_without_att_master = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(0.2)
        self.temperature = temperature

    def _attention_map(self, nodes, n_type1):
        """Attention with a separate weight vector per pair of node types."""
        hidden = torch.tanh(self.att_proj(_pairwise_products(nodes)))
        scores_11 = (hidden @ self.att_weight11).squeeze(-1)
        scores_22 = (hidden @ self.att_weight22).squeeze(-1)
        scores_12 = (hidden @ self.att_weight12).squeeze(-1)
        is_type1 = torch.zeros(nodes.shape[1], dtype=torch.bool, device=nodes.device)
        is_type1[:n_type1] = True
        both1 = is_type1[:, None] & is_type1[None, :]
        both2 = ~is_type1[:, None] & ~is_type1[None, :]
        scores = torch.where(both1, scores_11, torch.where(both2, scores_22, scores_12))
        return torch.softmax(scores / self.temperature, dim=-2)

    def _update_master(self, nodes, master):
        scores = torch.tanh(self.att_proj_master(nodes * master)) @ self.att_weight_master
        att = torch.softmax(scores / self.temperature, dim=-2)  # (B, n, 1)
        pooled = att.transpose(1, 2) @ nodes
        return self.proj_with_att_master(pooled) + self.proj_without_att_master(master)

    def forward(self, nodes1, nodes2, master):
        """Updates both node sets (B, n1, D), (B, n2, D) and the master (B, 1, D)."""
        n_type1 = nodes1.shape[1]
        nodes = torch.cat([self.proj_type1(nodes1), self.proj_type2(nodes2)], dim=1)
        nodes = self.input_drop(nodes)
        att = self._attention_map(nodes, n_type1)
        master = self._update_master(nodes, master)
        out = self.proj_with_att(att @ nodes) + self.proj_without_att(nodes)
        out = F.selu(self.bn(out.transpose(1, 2)).transpose(1, 2))
        return out[:, :n_type1], out[:, n_type1:], master


class GraphPool(nn.Module):
    """Keeps the top ``ratio`` share of nodes, scaled by their sigmoid scores."""

    def __init__(self, ratio, in_dim, dropout=0.3):
        super().__init__()
        self.ratio = ratio
        self.drop = nn.Dropout(dropout)
        self.score = nn.Linear(in_dim, 1)

    def forward(self, nodes):
        """(B, n, D) -> (B, max(1, int(n * ratio)), D)."""
        scores = torch.sigmoid(self.score(self.drop(nodes)))
        keep = max(int(nodes.shape[1] * self.ratio), 1)
        index = torch.topk(scores, keep, dim=1).indices
        return torch.gather(nodes * scores, 1, index.expand(-1, -1, nodes.shape[2]))


class AASISTHead(nn.Module):
    """AASIST back-end on fused SSL features.

    Linear(C, 128) -> (B, 1, 128, T) -> 3x3 max-pool -> BN+SELU -> six
    residual blocks (1->32, 32->32, 32->64, 64->64 x3) -> BN+SELU -> attention
    over time (spectral nodes) and over features (temporal nodes) -> graph
    attention (64) and graph pooling on each -> two branches of two stacked
    heterogeneous graph attention layers (32) with a master node -> readout
    (max |.| and mean of each node set, plus the master: 160) -> dropout 0.5
    -> Linear(160, 2). Trainable parameters: 414,474 for C = 768 and 447,242
    for C = 1024 (with a fused 12- or 24-layer encoder: the paper's 414,510
    and 447,314).

    With relative ``lengths`` in eval mode, each padded utterance is scored
    on its real frames alone, so padding never changes a score (the graph
    stage cannot mask padded temporal nodes exactly). In training, batches
    stay whole for BatchNorm: padded frames are kept out of the attention
    over time, but the temporal nodes still see them; prefer sorted batching.

    Arguments
    ---------
    input_size : int
        Channels C of the fused SSL features.
    filters : list of int
        Channels of the residual blocks.
    gat_dims : list of int
        Node dimensions of the graph attention and heterogeneous layers.
    pool_ratios : list of float
        Graph pooling ratios: spectral, temporal, heterogeneous.
    temperatures : list of float
        Softmax temperatures: spectral GAT, temporal GAT, heterogeneous.

    Example
    -------
    >>> head = AASISTHead(768)
    >>> head(torch.randn(2, 201, 768)).shape
    torch.Size([2, 2])
    >>> sum(p.numel() for p in head.parameters())
    414474
    """

    def __init__(
        self,
        input_size,
        filters=(32, 32, 64, 64, 64, 64),
        gat_dims=(64, 32),
        pool_ratios=(0.5, 0.5, 0.5),
        temperatures=(2.0, 2.0, 100.0),
        embedding_size=128,
    ):
        super().__init__()
        self.project = nn.Linear(input_size, embedding_size)
        self.input_bn = nn.BatchNorm2d(1)
        channels = [1, *filters]
        self.encoder = nn.Sequential(
            *[
                ResidualBlock(channels[i], channels[i + 1], first=i == 0)
                for i in range(len(filters))
            ]
        )
        n_channels = filters[-1]
        self.encoder_bn = nn.BatchNorm2d(n_channels)
        self.axis_attention = nn.Sequential(
            nn.Conv2d(n_channels, 128, 1),
            nn.SELU(),
            nn.BatchNorm2d(128),
            nn.Conv2d(128, n_channels, 1),
        )
        n_spectral = embedding_size // 3
        self.spectral_position = nn.Parameter(torch.randn(1, n_spectral, n_channels))
        self.master1 = nn.Parameter(torch.randn(1, 1, gat_dims[0]))
        self.master2 = nn.Parameter(torch.randn(1, 1, gat_dims[0]))
        self.gat_spectral = GraphAttention(n_channels, gat_dims[0], temperatures[0])
        self.gat_temporal = GraphAttention(n_channels, gat_dims[0], temperatures[1])
        self.pool_spectral = GraphPool(pool_ratios[0], gat_dims[0])
        self.pool_temporal = GraphPool(pool_ratios[1], gat_dims[0])
        self.branches = nn.ModuleList(
            [_HeterogeneousBranch(gat_dims, pool_ratios[2], temperatures[2]) for _ in range(2)]
        )
        self.branch_drop = nn.Dropout(0.2)
        self.readout_drop = nn.Dropout(0.5)
        self.classifier = nn.Linear(5 * gat_dims[1], 2)

    @full_precision  # fp32 even when the encoder runs in bf16/fp16
    def forward(self, x, lengths=None):
        """Maps features (B, T, C) and relative lengths (B,) to logits (B, 2)
        ordered [spoof, bonafide]."""
        if lengths is not None and not self.training:
            n_frames = torch.round(lengths * x.shape[1]).long().clamp(1, x.shape[1])
            if bool((n_frames < x.shape[1]).any()):
                return torch.cat(
                    [self._forward(x[b : b + 1, : int(n)]) for b, n in enumerate(n_frames)]
                )
        return self._forward(x, lengths)

    def _forward(self, x, lengths=None):
        x = self.project(x).transpose(1, 2).unsqueeze(1)  # (B, 1, 128, T)
        x = F.max_pool2d(x, (3, 3))
        x = self.encoder(F.selu(self.input_bn(x)))
        x = F.selu(self.encoder_bn(x))  # (B, 64, F, T')

        scores = self.axis_attention(x)
        time_scores = scores
        mask = frame_mask(lengths, x.shape[-1], x.device)
        if mask is not None:
            time_scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        spectral = (x * torch.softmax(time_scores, dim=-1)).sum(dim=-1)  # (B, 64, F)
        temporal = (x * torch.softmax(scores, dim=-2)).sum(dim=-2)  # (B, 64, T')
        spectral = self.pool_spectral(
            self.gat_spectral(spectral.transpose(1, 2) + self.spectral_position)
        )
        temporal = self.pool_temporal(self.gat_temporal(temporal.transpose(1, 2)))

        outputs = [
            branch(temporal, spectral, master.expand(x.shape[0], -1, -1))
            for branch, master in zip(self.branches, (self.master1, self.master2))
        ]
        temporal, spectral, master = (
            torch.maximum(self.branch_drop(a), self.branch_drop(b))
            for a, b in zip(*outputs)
        )
        readout = torch.cat(
            [
                temporal.abs().amax(dim=1),
                temporal.mean(dim=1),
                spectral.abs().amax(dim=1),
                spectral.mean(dim=1),
                master.squeeze(1),
            ],
            dim=1,
        )
        return self.classifier(self.readout_drop(readout))


class _HeterogeneousBranch(nn.Module):
    """Two stacked heterogeneous graph attention layers with pooling between."""

    def __init__(self, gat_dims, pool_ratio, temperature):
        super().__init__()
        self.first = HeterogeneousGraphAttention(gat_dims[0], gat_dims[1], temperature)
        self.second = HeterogeneousGraphAttention(gat_dims[1], gat_dims[1], temperature)
        self.pool_temporal = GraphPool(pool_ratio, gat_dims[1])
        self.pool_spectral = GraphPool(pool_ratio, gat_dims[1])

    def forward(self, temporal, spectral, master):
        temporal, spectral, master = self.first(temporal, spectral, master)
        temporal = self.pool_temporal(temporal)
        spectral = self.pool_spectral(spectral)
        temporal_aug, spectral_aug, master_aug = self.second(temporal, spectral, master)
        return temporal + temporal_aug, spectral + spectral_aug, master + master_aug
