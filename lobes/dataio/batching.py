"""Length-aware batching for whole, variable-length utterances.

Batching whole utterances at random pads every utterance to the longest one
in its batch. Grouping utterances of similar length first (sort by duration,
cut into batches, shuffle the order of the batches) keeps padding small while
training still sees the batches in a different order every epoch.
"""

import numpy as np
import torch


class SortedBatchSampler(torch.utils.data.Sampler):
    """Batches of utterances of similar length, in a shuffled order.

    The indices are sorted by length (stable, so ties keep the dataset order)
    and cut into consecutive batches of ``batch_size``; with ``shuffle`` the
    order of the batches (never their content) is permuted, reproducibly from
    ``seed`` and the epoch set by ``set_epoch``.

    Arguments
    ---------
    lengths : sequence of float
        Length (e.g. duration in seconds) of each dataset item, in dataset order.
    batch_size : int
        Items per batch; the last batch may be smaller.
    shuffle : bool
        Permute the batch order every epoch (training) or keep it (scoring).
    seed : int
        Seed of the batch order.
    num_replicas, rank : int
        Under DDP: the number of ranks and this one. Every rank draws the
        same batch order (same seed and epoch) and takes every
        ``num_replicas``-th batch from position ``rank``, so the ranks' batches
        are disjoint; the batch list is padded by repeating its first batches
        so that every rank gets as many. Set by ``shard``.

    Example
    -------
    >>> sampler = SortedBatchSampler([3.0, 1.0, 2.0, 1.5], batch_size=2, shuffle=False)
    >>> list(sampler)
    [[1, 3], [2, 0]]
    >>> len(sampler)
    2
    >>> [list(SortedBatchSampler([3.0, 1.0, 2.0], 1, shuffle=False).shard(r, 2)) for r in (0, 1)]
    [[[1], [0]], [[2], [1]]]
    """

    def __init__(self, lengths, batch_size, shuffle=True, seed=0, num_replicas=1, rank=0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.lengths = np.asarray(lengths, dtype=np.float64)
        if self.lengths.size == 0:
            raise ValueError("cannot batch an empty dataset")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self.shard(rank, num_replicas)
        order = np.argsort(self.lengths, kind="stable")
        self.batches = [
            order[start : start + self.batch_size].tolist()
            for start in range(0, order.size, self.batch_size)
        ]

    def shard(self, rank, num_replicas):
        """Makes this sampler yield rank ``rank``'s share of ``num_replicas``;
        returns it."""
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in 0..{num_replicas - 1}")
        self.rank, self.num_replicas = int(rank), int(num_replicas)
        return self

    def set_epoch(self, epoch):
        """Sets the epoch that, with the seed, fixes the batch order."""
        self.epoch = int(epoch)

    def __iter__(self):
        batches = self.batches
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.num_replicas > 1:
            padded = batches + batches[: len(self) * self.num_replicas - len(batches)]
            batches = padded[self.rank :: self.num_replicas]
        return iter(batches)

    def __len__(self):
        return -(-len(self.batches) // self.num_replicas)


def random_batches(n_items, batch_size, seed=0):
    """Batches of a plain shuffle, the baseline that sorted batching beats.

    Example
    -------
    >>> sorted(i for batch in random_batches(5, 2) for i in batch)
    [0, 1, 2, 3, 4]
    """
    order = np.random.default_rng(seed).permutation(n_items)
    return [order[start : start + batch_size].tolist() for start in range(0, n_items, batch_size)]


def padding_ratio(lengths, batches):
    """Share of padded positions when each batch is padded to its longest item.

    Arguments
    ---------
    lengths : sequence of float
        Item lengths (samples, frames or seconds: the ratio does not depend
        on the unit).
    batches : iterable of list of int
        Indices of the items of each batch.

    Example
    -------
    >>> round(padding_ratio([1.0, 3.0, 2.0, 2.0], [[0, 1], [2, 3]]), 3)  # 2 of 10 padded
    0.2
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    padded = real = 0.0
    for batch in batches:
        batch_lengths = lengths[list(batch)]
        padded += batch_lengths.max() * batch_lengths.size
        real += batch_lengths.sum()
    if padded == 0:
        raise ValueError("no batches, or only empty items")
    return float(1.0 - real / padded)
