"""Length-sorted batching and the padding it saves."""

import numpy as np
import pytest

from lobes.dataio.batching import SortedBatchSampler, padding_ratio, random_batches


def test_batches_cover_every_item_once_sorted_within():
    lengths = np.random.default_rng(0).uniform(0.2, 6.4, size=23)
    sampler = SortedBatchSampler(lengths, batch_size=4, shuffle=True, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 6
    assert sorted(i for batch in batches for i in batch) == list(range(23))
    # Each batch is a contiguous run of the sorted order.
    ranks = np.argsort(np.argsort(lengths, kind="stable"), kind="stable")
    for batch in batches:
        assert sorted(ranks[batch]) == list(range(min(ranks[batch]), max(ranks[batch]) + 1))


def test_order_changes_with_epoch_and_repeats_with_seed():
    lengths = np.arange(40.0)
    sampler = SortedBatchSampler(lengths, batch_size=4, seed=3)
    sampler.set_epoch(1)
    first = list(sampler)
    sampler.set_epoch(2)
    second = list(sampler)
    assert first != second
    again = SortedBatchSampler(lengths, batch_size=4, seed=3)
    again.set_epoch(1)
    assert list(again) == first  # a resumed run sees the same batches
    assert list(SortedBatchSampler(lengths, 4, shuffle=False)) == again.batches


def test_sorted_batches_pad_less_than_shuffled():
    lengths = np.random.default_rng(2).uniform(0.2, 6.4, size=200)
    sorted_ratio = padding_ratio(lengths, SortedBatchSampler(lengths, 32).batches)
    shuffled_ratio = padding_ratio(lengths, random_batches(200, 32, seed=0))
    assert sorted_ratio < 0.15 < 0.3 < shuffled_ratio


def test_padding_ratio_exact_and_errors():
    assert padding_ratio([2.0, 2.0], [[0, 1]]) == 0.0
    assert padding_ratio([1.0, 3.0], [[0], [1]]) == 0.0
    assert padding_ratio([1.0, 3.0], [[0, 1]]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        padding_ratio([1.0], [])
    with pytest.raises(ValueError):
        SortedBatchSampler([1.0], batch_size=0)
