"""Bootstrap intervals, paired tests and non-inferiority for the CM metrics.

Every metric of ``lobes.evaluation.metrics`` (EER %, minDCF, actDCF, Cllr) gets a
percentile bootstrap interval (Bengio and Mariethoz, 2004). Two resampling
units:

- ``trial``: bona fide and spoof trials are resampled with replacement,
  each class keeping its size (a stratified bootstrap);
- ``speaker`` (or any cluster): whole clusters are resampled with
  replacement, every trial of a drawn cluster coming along, so correlated
  trials of one speaker move together (the honest, wider interval).

A replicate is a vector of integer counts (how often each trial or cluster
was drawn) used as weights over ONE sorted order of the scores, so no
replicate sorts anything. The sorted trials are cut into about 3 sqrt(n)
blocks; per replicate only block sums of the weights are formed (a
multinomial draw over blocks, or a cluster x block matrix product), and the
few blocks that can hold the EER crossing or the minDCF minimum are refined
trial by trial. The resampled EER is the official one of ``lobes.evaluation.metrics``
on the data set in which every trial appears as often as it was drawn
(copies of one trial are adjacent thresholds, as ``det_curve`` orders
ties); with all counts 1 it equals ``detection_metrics`` bit for bit.

Paired comparisons draw the same trials (or clusters) for both systems and
take the percentile interval of the difference B - A; the two-sided p-value
is twice the smaller share of replicates on either side of zero, and B is
non-inferior to A at margin m when the upper end of that interval is below
m (all four metrics are costs: lower is better).

Too few trials (under ``MIN_TRIALS_PER_CLASS`` of a class) or clusters
(under ``MIN_CLUSTERS``) give no interval, only the reason.
"""

import math
import zlib

import numpy as np

from lobes.evaluation.metrics import (
    ASVSPOOF5_COSTS,
    _SortedTrials,
    detection_metrics,
    group_codes,
    tandem_costs,
)

METRICS = ("eer", "min_dcf", "act_dcf", "cllr")
DEFAULT_REPLICATES = 1000
DEFAULT_SEED = 0
LEVEL = 0.95
MIN_TRIALS_PER_CLASS = 10
MIN_CLUSTERS = 3
# A cluster replicate that draws no trial of a class has no metric; past
# this share of such replicates the interval is not reported.
MAX_DEGENERATE_SHARE = 0.1
# Replicate weights are materialised at most this many at a time (paired
# trial-level draws): replicates x trials.
CHUNK_ELEMENTS = 4_000_000


class UnavailableInterval(ValueError):
    """No meaningful interval; the message says why."""


# ---------------------------------------------------------------------------
# One system's trials, sorted once and cut into blocks.


class _OrderedSystem:
    """Scores sorted once (``lobes.evaluation.metrics``'s order: ties bona fide first),
    the cut into blocks, and the per-block class counts.

    A block boundary sits at the Bayes threshold of the cost model, so
    actDCF (misses below it, false alarms at or above it) comes from block
    sums alone.
    """

    def __init__(self, scores, is_bonafide, costs=ASVSPOOF5_COSTS, block_size=None):
        scores = np.asarray(scores, dtype=np.float64).ravel()
        trials = _SortedTrials(scores, is_bonafide, costs)
        self.costs = costs
        self.order = trials.order
        self.bonafide = trials.bonafide
        self.cllr_term = trials.cllr_term
        n = self.order.size
        self.n = n
        self.n_bonafide = int(self.bonafide.sum())
        self.n_spoof = n - self.n_bonafide
        act_position = int(np.searchsorted(scores[self.order], costs.threshold, side="left"))
        # About 3 sqrt(n) blocks: block sums stay cheap, refined blocks small.
        size = block_size or max(16, int(math.sqrt(n) / 3))
        bounds = np.unique(np.concatenate([np.arange(0, n, size), [act_position, n]]))
        self.starts, self.ends = bounds[:-1], bounds[1:]
        # Blocks before the threshold's position: their sums are the misses.
        self.act_blocks = int(np.searchsorted(self.ends, act_position, side="right"))
        self.block_of = np.repeat(np.arange(self.starts.size), self.ends - self.starts)
        self.block_bonafide = np.add.reduceat(self.bonafide.astype(np.int64), self.starts)
        self.block_spoof = (self.ends - self.starts) - self.block_bonafide
        # Sorted positions of each class, and where each block's run of them begins.
        self.class_positions = (np.flatnonzero(self.bonafide), np.flatnonzero(~self.bonafide))
        self.class_block_first = tuple(
            np.concatenate([[0], np.cumsum(counts)[:-1]])
            for counts in (self.block_bonafide, self.block_spoof)
        )

    def positions(self, blocks):
        """Sorted positions of the trials of ``blocks`` (any block numbers,
        repeats allowed), concatenated, with each block's offset and length
        in that list."""
        lengths = self.ends[blocks] - self.starts[blocks]
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        shift = np.repeat(self.starts[blocks] - offsets, lengths)
        return np.arange(int(lengths.sum())) + shift, offsets, lengths

    @property
    def n_blocks(self):
        return self.starts.size


# ---------------------------------------------------------------------------
# Draws: what a set of replicates needs of one system.


class _TrialDraws:
    """Stratified trial resampling of one system, drawn hierarchically:
    class counts per block (a multinomial over blocks), then, only for the
    blocks the metrics refine, the counts of each trial in the block (a
    multinomial within it). Both stages together are exactly the multinomial
    bootstrap of each class. Cllr, a sum over every trial, takes its own
    draws of the same distribution (its interval is a marginal one, as is
    every interval here)."""

    def __init__(self, system, replicates, rng):
        self.system, self.rng = system, rng
        self.replicates = replicates
        self.blocks = {
            "bonafide": rng.multinomial(system.n_bonafide, system.block_bonafide / system.n_bonafide,
                                        size=replicates).astype(np.float64),
            "spoof": rng.multinomial(system.n_spoof, system.block_spoof / system.n_spoof,
                                     size=replicates).astype(np.float64),
        }

    def totals(self):
        ones = np.ones(self.replicates)
        return ones * self.system.n_bonafide, ones * self.system.n_spoof

    def block_sums(self):
        return self.blocks["bonafide"], self.blocks["spoof"]

    def within(self, replicates, blocks, offsets, lengths):
        """Counts of the trials of ``blocks[k]`` in replicate
        ``replicates[k]``, concatenated (``_OrderedSystem.positions``),
        given the replicate's class counts per block: uniform draws within
        each block's trials of a class (counting them is far faster than
        numpy's category-by-category multinomial)."""
        system = self.system
        local = []
        for c, name in enumerate(("bonafide", "spoof")):
            counts = self.blocks[name][replicates, blocks].astype(np.int64)
            group = np.repeat(np.arange(blocks.size), counts)
            sizes = (system.block_bonafide, system.block_spoof)[c][blocks][group]
            drawn = system.class_block_first[c][blocks][group] + self.rng.integers(0, sizes)
            drawn = system.class_positions[c][drawn]
            local.append(drawn - system.starts[blocks][group] + offsets[group])
        return np.bincount(np.concatenate(local), minlength=int(lengths.sum())).astype(np.float64)

    def cllr_sums(self):
        system = self.system
        sums = []
        for mask in (system.bonafide, ~system.bonafide):
            terms = system.cllr_term[mask]
            chunk = max(1, CHUNK_ELEMENTS // max(terms.size, 1))
            parts = [
                terms[self.rng.integers(0, terms.size, size=(min(chunk, self.replicates - r), terms.size))].sum(1)
                for r in range(0, self.replicates, chunk)
            ]
            sums.append(np.concatenate(parts))
        return sums[0], sums[1]


class _ClusterWeights:
    """Cluster resampling: ``weights[r, c]`` is how often replicate ``r``
    drew cluster ``c``; shared by every system and subset of the same trials
    (paired comparisons, breakdowns)."""

    def __init__(self, n_clusters, replicates, rng):
        self.n_clusters = n_clusters
        self.weights = rng.multinomial(
            n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=replicates
        ).astype(np.float64)

    def draws(self, system, clusters):
        """Draws for ``system`` whose trials (input order) are in ``clusters``
        (integer codes below ``n_clusters``)."""
        return _ClusterDraws(system, self.weights, np.asarray(clusters)[system.order], self.n_clusters)


class _StoredBlockSums:
    """Draws whose class weights per block (``_blocks``) are computed up front."""

    def totals(self):
        return self._blocks[0].sum(1), self._blocks[1].sum(1)

    def block_sums(self):
        return self._blocks


class _ClusterDraws(_StoredBlockSums):
    def __init__(self, system, weights, sorted_clusters, n_clusters):
        self.system, self.weights, self.sorted_clusters = system, weights, sorted_clusters
        per_class = []
        for mask in (system.bonafide, ~system.bonafide):
            cells = sorted_clusters[mask] * system.n_blocks + system.block_of[mask]
            counts = np.bincount(cells, minlength=n_clusters * system.n_blocks)
            per_class.append(counts.reshape(n_clusters, system.n_blocks).astype(np.float64))
        self._blocks = (weights @ per_class[0], weights @ per_class[1])
        terms = np.zeros((n_clusters, 2))
        np.add.at(terms[:, 0], sorted_clusters[system.bonafide], system.cllr_term[system.bonafide])
        np.add.at(terms[:, 1], sorted_clusters[~system.bonafide], system.cllr_term[~system.bonafide])
        self._cllr = weights @ terms

    def within(self, replicates, blocks, offsets, lengths):
        positions = self.system.positions(blocks)[0]
        return self.weights[np.repeat(replicates, lengths), self.sorted_clusters[positions]]

    def cllr_sums(self):
        return self._cllr[:, 0], self._cllr[:, 1]


class _WeightDraws(_StoredBlockSums):
    """Given per-trial weights (``weights[r, i]``, input order) of a chunk of
    replicates: paired trial-level comparisons, where two systems' sorted
    orders must see the very same draws, and the tests of the block logic."""

    def __init__(self, system, weights):
        self.system = system
        # Counts below 2**24 are exact in float32, which halves the traffic.
        self.sorted = np.asarray(weights)[:, system.order].astype(np.float32)
        bonafide = np.where(system.bonafide, np.float32(1), np.float32(0))
        block_b = np.add.reduceat(self.sorted * bonafide, system.starts, axis=1, dtype=np.float64)
        self._blocks = (block_b, np.add.reduceat(self.sorted, system.starts, axis=1, dtype=np.float64) - block_b)

    def within(self, replicates, blocks, offsets, lengths):
        positions = self.system.positions(blocks)[0]
        return self.sorted[np.repeat(replicates, lengths), positions].astype(np.float64)

    def cllr_sums(self):
        bonafide, terms = self.system.bonafide, self.system.cllr_term
        return (self.sorted[:, bonafide].astype(np.float64) @ terms[bonafide],
                self.sorted[:, ~bonafide].astype(np.float64) @ terms[~bonafide])


def stratified_trial_weights(is_bonafide, replicates, rng):
    """Per-trial counts of ``replicates`` stratified trial resamplings
    (each class resampled to its own size), shape (replicates, n).

    Example
    -------
    >>> w = stratified_trial_weights([True, True, False], 4, np.random.default_rng(0))
    >>> w.shape, w[:, :2].sum(1).tolist(), w[:, 2].tolist()
    ((4, 3), [2, 2, 2, 2], [1, 1, 1, 1])
    """
    is_bonafide = np.asarray(is_bonafide, dtype=bool)
    weights = np.zeros((replicates, is_bonafide.size), dtype=np.int32)
    for mask in (is_bonafide, ~is_bonafide):
        members = np.flatnonzero(mask)
        if members.size:
            # Counting uniform draws per row (numpy's multinomial is far slower).
            drawn = rng.integers(0, members.size, size=(replicates, members.size))
            drawn += np.arange(replicates)[:, None] * members.size
            counts = np.bincount(drawn.ravel(), minlength=replicates * members.size)
            weights[:, members] = counts.reshape(replicates, members.size)
    return weights


# ---------------------------------------------------------------------------
# Metrics of every replicate from block sums and a few refined blocks.


def _crossing_eer(prev_b, prev_s, copies, bonafide, weight_b, weight_s):
    """Official EER (%) per replicate, given the trial where frr - far first
    reaches zero (its class, its number of copies, and the cumulative class
    weights before it). Copies of one trial are consecutive thresholds along
    which frr - far grows by 1/W each: the first copy at or past zero is
    found, give or take one, and the smallest |frr - far| of the whole curve
    is among it, its neighbours and the point before the trial."""
    first = np.where(bonafide, (weight_s - prev_s) / weight_s * weight_b - prev_b,
                     weight_s - prev_s - prev_b / weight_b * weight_s)
    first = np.clip(np.ceil(first), 0, copies)
    ks = first[:, None] + np.arange(-2, 3)[None, :]
    valid = (ks >= 0) & (ks <= copies[:, None])
    cb = prev_b[:, None] + np.where(bonafide[:, None], ks, 0.0)
    cs = prev_s[:, None] + np.where(bonafide[:, None], 0.0, ks)
    frr = cb / weight_b[:, None]
    far = (weight_s[:, None] - cs) / weight_s[:, None]
    t = np.argmin(np.where(valid, np.abs(frr - far), np.inf), axis=1)
    rows = np.arange(t.size)
    return 100 * (frr[rows, t] + far[rows, t]) / 2


def _refine(system, draws, pairs, cum_b, cum_s, weight_b, weight_s, crossing, out_eer, out_min):
    """Trial-level EER and minDCF of the (replicate, block) ``pairs`` (codes
    ``r * n_blocks + j``): the replicate's EER block and every block that
    may hold a lower cost than its block ends."""
    n_blocks = system.n_blocks
    rows, blocks = np.divmod(pairs, n_blocks)
    _, offsets, lengths = system.positions(blocks)
    weights = draws.within(rows, blocks, offsets, lengths)
    segment = np.repeat(np.arange(pairs.size), lengths)
    positions = system.positions(blocks)[0]
    bonafide = system.bonafide[positions]
    weights_b = np.where(bonafide, weights, 0.0)
    before = np.maximum(blocks - 1, 0)
    first_b = np.where(blocks > 0, cum_b[rows, before], 0.0)
    first_s = np.where(blocks > 0, cum_s[rows, before], 0.0)
    # Cumulative class weights from each block's start (a per-block cumsum).
    all_b, all_s = np.cumsum(weights_b), np.cumsum(weights - weights_b)
    restart_b = np.concatenate([[0.0], all_b])[offsets] - first_b
    restart_s = np.concatenate([[0.0], all_s])[offsets] - first_s
    in_b = all_b - restart_b[segment]
    in_s = all_s - restart_s[segment]
    total_b, total_s = weight_b[rows][segment], weight_s[rows][segment]
    frr, far = in_b / total_b, (total_s - in_s) / total_s
    if out_min is not None:
        inside = np.minimum.reduceat(system.costs.normalised_dcf(frr, far), offsets)
        np.minimum.at(out_min, rows, inside)
    if out_eer is not None:
        hits = np.flatnonzero((blocks == crossing[rows])[segment] & (frr - far >= 0))
        found, first = np.unique(segment[hits], return_index=True)
        i = hits[first]
        at_start = i == offsets[found]
        prev_b = np.where(at_start, first_b[found], in_b[np.maximum(i - 1, 0)])
        prev_s = np.where(at_start, first_s[found], in_s[np.maximum(i - 1, 0)])
        r = rows[found]
        out_eer[r] = _crossing_eer(prev_b, prev_s, np.round(weights[i]), bonafide[i],
                                   weight_b[r], weight_s[r])


def _replicate_metrics(system, draws, metrics=METRICS):
    """Each metric of each replicate, NaN where a replicate lacks a class."""
    costs = system.costs
    weight_b, weight_s = draws.totals()
    ok = (weight_b > 0) & (weight_s > 0)
    safe_b, safe_s = np.where(ok, weight_b, 1.0), np.where(ok, weight_s, 1.0)
    out = {}
    if "cllr" in metrics:
        sum_b, sum_s = draws.cllr_sums()
        out["cllr"] = np.where(ok, 0.5 * (sum_b / safe_b + sum_s / safe_s) / np.log(2.0), np.nan)
    if not {"eer", "min_dcf", "act_dcf"} & set(metrics):
        return out
    block_b, block_s = draws.block_sums()
    cum_b, cum_s = np.cumsum(block_b, axis=1), np.cumsum(block_s, axis=1)
    frr = cum_b / safe_b[:, None]
    far = (safe_s[:, None] - cum_s) / safe_s[:, None]
    if "act_dcf" in metrics:
        k = system.act_blocks
        misses = cum_b[:, k - 1] if k else np.zeros(ok.size)
        alarms = safe_s - (cum_s[:, k - 1] if k else 0.0)
        out["act_dcf"] = np.where(ok, costs.normalised_dcf(misses / safe_b, alarms / safe_s), np.nan)
    if not {"eer", "min_dcf"} & set(metrics):
        return out
    eer = np.full(ok.size, np.nan)
    min_dcf = np.full(ok.size, np.nan)
    # The curve's first point (frr 0, far 1) and every block end.
    dcf_ends = costs.normalised_dcf(frr, far)
    best = np.minimum(float(costs.normalised_dcf(0.0, 1.0)), dcf_ends.min(1))
    frr_start = np.concatenate([np.zeros((ok.size, 1)), frr[:, :-1]], axis=1)
    # No point inside a block costs less than its start's frr with its end's far.
    lower = costs.normalised_dcf(frr_start, far)
    crossing = np.argmax(frr - far >= 0, axis=1)
    n_blocks = system.n_blocks
    codes = []
    if "eer" in metrics:
        codes.append(np.flatnonzero(ok) * n_blocks + crossing[ok])
    if "min_dcf" in metrics:
        min_dcf[ok] = best[ok]
        codes.append(np.flatnonzero((lower < best[:, None]) & ok[:, None]))
    pairs = np.unique(np.concatenate(codes))
    # In chunks of about CHUNK_ELEMENTS trials (pairs are ordered by replicate).
    sizes = np.cumsum((system.ends - system.starts)[pairs % n_blocks])
    cuts = np.searchsorted(sizes, np.arange(CHUNK_ELEMENTS, sizes[-1] if sizes.size else 0, CHUNK_ELEMENTS))
    for part in np.split(pairs, cuts):
        if part.size:
            _refine(system, draws, part, cum_b, cum_s, safe_b, safe_s, crossing,
                    eer if "eer" in metrics else None, min_dcf if "min_dcf" in metrics else None)
    if "eer" in metrics:
        out["eer"] = eer
    if "min_dcf" in metrics:
        out["min_dcf"] = min_dcf
    return out


def weighted_metrics(scores, is_bonafide, weights, costs=ASVSPOOF5_COSTS, metrics=METRICS, block_size=None):
    """The metrics of the data sets in which trial ``i`` appears
    ``weights[r, i]`` times (integer counts), one row per data set, through
    the block logic of the bootstrap (exposed to test it).

    Example
    -------
    >>> bona, spoof = [0.9, 0.8, 0.7, 0.3], [0.6, 0.4, 0.2, 0.1, 0.05]
    >>> out = weighted_metrics(bona + spoof, [True] * 4 + [False] * 5, np.ones((1, 9)))
    >>> float(out["eer"][0]) == detection_metrics(bona, spoof)["eer"]
    True
    """
    system = _OrderedSystem(scores, is_bonafide, costs, block_size)
    return _replicate_metrics(system, _WeightDraws(system, np.atleast_2d(weights)), metrics)


# ---------------------------------------------------------------------------
# Intervals.


def check_counts(n_bonafide, n_spoof, n_clusters=None):
    """Refuses (``UnavailableInterval``, a ``ValueError``) an interval from
    too few trials of a class or too few clusters."""
    if n_bonafide < MIN_TRIALS_PER_CLASS or n_spoof < MIN_TRIALS_PER_CLASS:
        raise UnavailableInterval(
            f"too few trials for an interval: {n_bonafide} bona fide and {n_spoof} spoof "
            f"(needs {MIN_TRIALS_PER_CLASS} of each)"
        )
    if n_clusters is not None and n_clusters < MIN_CLUSTERS:
        raise UnavailableInterval(
            f"too few clusters for a cluster bootstrap: {n_clusters} (needs {MIN_CLUSTERS})"
        )


def percentile_interval(values, level=LEVEL):
    """``{"low", "high"}`` of the finite replicate values, or
    ``{"unavailable": reason}`` when too many replicates had no value.

    Example
    -------
    >>> {k: round(v, 6) for k, v in percentile_interval(np.arange(101.0)).items()}
    {'low': 2.5, 'high': 97.5}
    >>> percentile_interval(np.array([1.0] + [np.nan] * 9))["unavailable"][:40]
    '9 of 10 replicates drew no trial of a cl'
    """
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    lost = values.size - finite.size
    if lost > MAX_DEGENERATE_SHARE * values.size:
        return {"unavailable": f"{lost} of {values.size} replicates drew no trial of a class "
                               "(too few clusters holding both)"}
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return {"low": float(low), "high": float(high)}


def _rng(seed, *names):
    """A generator per (seed, subset), the same in every run."""
    return np.random.default_rng([seed, *(zlib.crc32(str(n).encode()) for n in names)])


def replicate_values(scores, is_bonafide, clusters=None, replicates=DEFAULT_REPLICATES,
                     seed=DEFAULT_SEED, costs=ASVSPOOF5_COSTS, metrics=METRICS):
    """Bootstrap replicates of ``metrics`` for one system: a dict metric ->
    array (NaN where a cluster replicate drew no trial of a class).
    ``clusters`` (one label per trial) switches to the cluster bootstrap."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    is_bonafide = np.asarray(is_bonafide, dtype=bool).ravel()
    system = _OrderedSystem(scores, is_bonafide, costs)
    if clusters is None:
        draws = _TrialDraws(system, replicates, _rng(seed, "trial"))
    else:
        codes, names = group_codes(clusters)
        draws = _ClusterWeights(len(names), replicates, _rng(seed, "cluster")).draws(system, codes)
    return _replicate_metrics(system, draws, metrics)


def metric_intervals(scores, is_bonafide, clusters=None, replicates=DEFAULT_REPLICATES,
                     seed=DEFAULT_SEED, level=LEVEL, costs=ASVSPOOF5_COSTS, metrics=METRICS):
    """Percentile intervals of ``metrics`` for one system: metric ->
    ``{"low", "high"}`` or ``{"unavailable": reason}``.

    Example
    -------
    >>> rng = np.random.default_rng(1)
    >>> scores = np.concatenate([rng.normal(2, 1, 300), rng.normal(0, 1, 300)])
    >>> labels = np.arange(600) < 300
    >>> iv = metric_intervals(scores, labels, replicates=200)
    >>> iv["eer"]["low"] < detection_metrics(scores[:300], scores[300:])["eer"] < iv["eer"]["high"]
    True
    >>> metric_intervals(scores[295:305], labels[295:305])["eer"]
    {'unavailable': 'too few trials for an interval: 5 bona fide and 5 spoof (needs 10 of each)'}
    """
    is_bonafide = np.asarray(is_bonafide, dtype=bool).ravel()
    n_clusters = None if clusters is None else len(set(clusters))
    try:
        check_counts(int(is_bonafide.sum()), int((~is_bonafide).sum()), n_clusters)
    except UnavailableInterval as err:
        return {metric: {"unavailable": str(err)} for metric in metrics}
    values = replicate_values(scores, is_bonafide, clusters, replicates, seed, costs, metrics)
    return {metric: percentile_interval(values[metric], level) for metric in metrics}


def _subsets(is_bonafide, attacks):
    """``pooled`` and, per attack, its spoofs with every bona fide trial
    (the breakdown of ``lobes.evaluation.metrics.metrics_by_group``)."""
    yield "pooled", np.ones(is_bonafide.size, dtype=bool)
    codes, names = group_codes(attacks)
    for code, name in enumerate(names):
        spoof = (codes == code) & ~is_bonafide
        if spoof.any():
            yield name, is_bonafide | spoof


def set_intervals(scores, is_bonafide, attacks, clusters=None, replicates=DEFAULT_REPLICATES,
                  seed=DEFAULT_SEED, level=LEVEL, costs=ASVSPOOF5_COSTS, metrics=METRICS):
    """Intervals of one scored set, pooled and per attack: name -> metric ->
    interval. With clusters, one set of cluster draws serves every subset."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    is_bonafide = np.asarray(is_bonafide, dtype=bool).ravel()
    cluster_weights = codes = None
    if clusters is not None:
        codes, names = group_codes(clusters)
        cluster_weights = _ClusterWeights(len(names), replicates, _rng(seed, "cluster"))
    out = {}
    for name, selected in _subsets(is_bonafide, attacks):
        labels = is_bonafide[selected]
        n_clusters = None if codes is None else np.unique(codes[selected]).size
        try:
            check_counts(int(labels.sum()), int((~labels).sum()), n_clusters)
        except UnavailableInterval as err:
            out[name] = {metric: {"unavailable": str(err)} for metric in metrics}
            continue
        system = _OrderedSystem(scores[selected], labels, costs)
        if codes is None:
            draws = _TrialDraws(system, replicates, _rng(seed, "trial", name))
        else:
            draws = cluster_weights.draws(system, codes[selected])
        values = _replicate_metrics(system, draws, metrics)
        out[name] = {metric: percentile_interval(values[metric], level) for metric in metrics}
    return out


def record_intervals(records, speakers=None, calibration=None, replicates=DEFAULT_REPLICATES,
                     seed=DEFAULT_SEED, level=LEVEL, costs=ASVSPOOF5_COSTS):
    """The ``intervals`` entry of a scored set in ``results.json``.

    Arguments
    ---------
    records : list of ScoreRecord
    speakers : dict, optional
        Trial id -> speaker (``trial_speakers``); with a speaker for every
        trial the bootstrap resamples speakers, otherwise trials.
    calibration : dict, optional
        The set's ``calibration`` entry (``a``, ``b``): actDCF and Cllr of
        the calibrated scores get intervals too (the map is increasing, so
        EER and minDCF and their intervals are those of the raw scores).

    Example
    -------
    >>> from lobes.evaluation.scores import ScoreRecord as R
    >>> rng = np.random.default_rng(0)
    >>> recs = [R(f"b{i}", "-", "bonafide", float(s)) for i, s in enumerate(rng.normal(2, 1, 40))]
    >>> recs += [R(f"s{i}", "A01", "spoof", float(s)) for i, s in enumerate(rng.normal(0, 1, 40))]
    >>> out = record_intervals(recs, replicates=100)
    >>> out["unit"], out["replicates"], sorted(out["by_attack"]), sorted(out["pooled"])
    ('trial', 100, ['A01', 'pooled'], ['act_dcf', 'cllr', 'eer', 'min_dcf'])
    """
    scores = np.fromiter((r.score for r in records), dtype=np.float64, count=len(records))
    is_bonafide = np.array([r.key == "bonafide" for r in records], dtype=bool)
    attacks = [r.attack for r in records]
    clusters, unit, note = _record_clusters(records, speakers)
    by_attack = set_intervals(scores, is_bonafide, attacks, clusters, replicates, seed, level, costs)
    entry = {
        "method": "percentile bootstrap",
        "level": level,
        "replicates": replicates,
        "seed": seed,
        "unit": unit,
        "n_clusters": None if clusters is None else len(set(clusters)),
        "pooled": by_attack["pooled"],
        "by_attack": by_attack,
    }
    if note:
        entry["unit_note"] = note
    if calibration:
        calibrated = calibration["a"] * scores + calibration["b"]
        entry["calibrated"] = set_intervals(
            calibrated, is_bonafide, attacks, clusters, replicates, seed, level, costs,
            metrics=("act_dcf", "cllr"),
        )
    return entry


def _record_clusters(records, speakers):
    """(clusters or None, unit, note or None): speakers when every trial has one."""
    if not speakers:
        return None, "trial", "the protocol gives no speakers: trials resampled"
    missing = [r.utt_id for r in records if not speakers.get(r.utt_id)]
    if missing:
        return None, "trial", f"{len(missing)} trials have no speaker (e.g. {missing[0]}): trials resampled"
    return [speakers[r.utt_id] for r in records], "speaker", None


def tdcf_interval(records, asv, formulation, speakers=None, replicates=DEFAULT_REPLICATES,
                  seed=DEFAULT_SEED, level=LEVEL):
    """Interval of the min t-DCF (``formulation`` 2019 or 2021) of scored
    records: the countermeasure's trials (or speakers) are resampled, the
    organisers' ASV scores, and so the t-DCF's costs, are held fixed.

    Example
    -------
    >>> from lobes.evaluation.scores import ScoreRecord as R
    >>> asv = {"target": np.array([3.0, 4.0]), "nontarget": np.array([-3.0, -2.0]),
    ...        "spoof": np.array([2.5, -1.0])}
    >>> rng = np.random.default_rng(0)
    >>> recs = [R(f"b{i}", "-", "bonafide", float(s)) for i, s in enumerate(rng.normal(2, 1, 50))]
    >>> recs += [R(f"s{i}", "A07", "spoof", float(s)) for i, s in enumerate(rng.normal(0, 1, 50))]
    >>> out = tdcf_interval(recs, asv, 2019, replicates=100)
    >>> out["low"] < out["high"], out["unit"], out["asv"]
    (True, 'trial', 'held fixed')
    """
    costs = tandem_costs(asv, formulation)
    scores = np.fromiter((r.score for r in records), dtype=np.float64, count=len(records))
    is_bonafide = np.array([r.key == "bonafide" for r in records], dtype=bool)
    clusters, unit, _ = _record_clusters(records, speakers)
    interval = metric_intervals(scores, is_bonafide, clusters, replicates, seed, level, costs,
                                metrics=("min_dcf",))["min_dcf"]
    return {**interval, "formulation": formulation, "unit": unit, "replicates": replicates,
            "seed": seed, "level": level, "asv": "held fixed"}


def interval_summary(intervals):
    """One line of ``{metric: interval}``.

    Example
    -------
    >>> interval_summary({"eer": {"low": 1.0, "high": 2.5}, "cllr": {"unavailable": "too few"}})
    'eer [1.000, 2.500]  cllr (unavailable: too few)'
    """
    return "  ".join(
        f"{metric} (unavailable: {iv['unavailable']})" if "unavailable" in iv
        else f"{metric} [{iv['low']:.3f}, {iv['high']:.3f}]"
        for metric, iv in intervals.items()
    )


def trial_speakers(dataset):
    """Trial id -> speaker of a ``DynamicItemDataset`` built on a manifest
    with a ``speaker`` column ("" or "-" where the protocol has none); None
    without that column."""
    data = getattr(dataset, "data", None) or {}
    if not data or "speaker" not in next(iter(data.values())):
        return None
    return {
        utt_id: ("" if row.get("speaker") in (None, "-", "None") else str(row["speaker"]))
        for utt_id, row in data.items()
    }


# ---------------------------------------------------------------------------
# Paired comparison.


def shared_replicates(score_columns, is_bonafide, clusters=None, replicates=DEFAULT_REPLICATES,
                      seed=DEFAULT_SEED, costs=ASVSPOOF5_COSTS, metrics=METRICS):
    """Replicates of ``metrics`` for several systems scored on the same
    trials (``score_columns``: one score array per system), all from the
    very same draws: a list of dicts metric -> array, one per system."""
    is_bonafide = np.asarray(is_bonafide, dtype=bool).ravel()
    systems = [_OrderedSystem(s, is_bonafide, costs) for s in score_columns]
    if clusters is not None:
        codes, names = group_codes(clusters)
        weights = _ClusterWeights(len(names), replicates, _rng(seed, "cluster"))
        return [_replicate_metrics(s, weights.draws(s, codes), metrics) for s in systems]
    rng = _rng(seed, "paired")
    chunk = max(1, CHUNK_ELEMENTS // is_bonafide.size)
    parts = [[] for _ in systems]
    for first in range(0, replicates, chunk):
        weights = stratified_trial_weights(is_bonafide, min(chunk, replicates - first), rng)
        for system, part in zip(systems, parts):
            part.append(_replicate_metrics(system, _WeightDraws(system, weights), metrics))
    return [{m: np.concatenate([p[m] for p in part]) for m in metrics} for part in parts]


def paired_replicates(scores_a, scores_b, is_bonafide, clusters=None, replicates=DEFAULT_REPLICATES,
                      seed=DEFAULT_SEED, costs=ASVSPOOF5_COSTS, metrics=METRICS):
    """``shared_replicates`` of two systems: (values of A, values of B)."""
    return tuple(shared_replicates([scores_a, scores_b], is_bonafide, clusters, replicates, seed,
                                   costs, metrics))


def difference_test(delta, level=LEVEL, margin=None):
    """Interval, two-sided p-value and (with ``margin``) non-inferiority
    verdict of bootstrap replicates of a difference B - A.

    Example
    -------
    >>> out = difference_test(np.linspace(0.1, 1.0, 100), margin=2.0)
    >>> out["p_value"] < 0.05, out["non_inferior"]
    (True, True)
    """
    delta = np.asarray(delta, dtype=np.float64)
    out = {"interval": percentile_interval(delta, level)}
    finite = delta[np.isfinite(delta)]
    below, above = int(np.sum(finite <= 0)), int(np.sum(finite >= 0))
    # The percentile test: rejects "no difference" at 1 - level exactly when
    # zero lies outside the interval; +1 keeps a p-value from reading 0.
    out["p_value"] = min(1.0, 2 * (min(below, above) + 1) / (finite.size + 1)) if finite.size else None
    if margin is not None:
        out["margin"] = float(margin)
        high = out["interval"].get("high")
        out["non_inferior"] = None if high is None else bool(high < margin)
    return out


def paired_comparison(scores_a, scores_b, is_bonafide, metric="eer", margin=None, clusters=None,
                      replicates=DEFAULT_REPLICATES, seed=DEFAULT_SEED, level=LEVEL,
                      costs=ASVSPOOF5_COSTS):
    """B - A on the same trials: the difference, its paired percentile
    interval, a two-sided p-value (no difference), and with ``margin`` (in
    the metric's units; EER in % points) the non-inferiority verdict: B is
    not worse than A by more than ``margin`` when the interval's upper end
    is below it.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> labels = np.arange(400) < 200
    >>> a = np.where(labels, 2.0, 0.0) + rng.normal(0, 1, 400)
    >>> out = paired_comparison(a, a + rng.normal(0, 0.01, 400), labels, margin=2.0, replicates=200)
    >>> out["p_value"] > 0.05, out["non_inferior"]
    (True, True)
    """
    is_bonafide = np.asarray(is_bonafide, dtype=bool).ravel()
    scores_a = np.asarray(scores_a, dtype=np.float64).ravel()
    scores_b = np.asarray(scores_b, dtype=np.float64).ravel()
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    value_a = detection_metrics(scores_a[is_bonafide], scores_a[~is_bonafide], costs)[metric]
    value_b = detection_metrics(scores_b[is_bonafide], scores_b[~is_bonafide], costs)[metric]
    out = {
        "metric": metric, "a": value_a, "b": value_b, "difference": value_b - value_a,
        "method": "paired percentile bootstrap", "level": level, "replicates": replicates,
        "seed": seed, "unit": "trial" if clusters is None else "cluster",
        "n_clusters": None if clusters is None else len(set(clusters)),
    }
    try:
        check_counts(int(is_bonafide.sum()), int((~is_bonafide).sum()), out["n_clusters"])
    except UnavailableInterval as err:
        out.update(interval={"unavailable": str(err)}, p_value=None)
        if margin is not None:
            out.update(margin=margin, non_inferior=None)
        return out
    values_a, values_b = paired_replicates(scores_a, scores_b, is_bonafide, clusters, replicates,
                                           seed, costs, (metric,))
    out.update(difference_test(values_b[metric] - values_a[metric], level, margin))
    return out
