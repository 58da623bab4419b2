"""Countermeasure metrics: EER, min t-DCF (ASVspoof 2019 and 2021), the
ASVspoof 5 costs (minDCF, actDCF, Cllr), breakdowns.

All scores follow one convention: higher means more bona fide.
The EER is the official ASVspoof definition (stable sort, one threshold per
sorted trial, EER = mean of miss and false-alarm rates where they are
closest), computed in O(n log n).
"""

from dataclasses import dataclass

import numpy as np


def det_curve(bonafide_scores, spoof_scores):
    """Miss and false-alarm rates at every threshold, ASVspoof style.

    Returns
    -------
    frr : np.ndarray
        Share of bona fide trials scored below each threshold.
    far : np.ndarray
        Share of spoof trials scored at or above each threshold.
    thresholds : np.ndarray

    Example
    -------
    >>> frr, far, thr = det_curve([1.0, 2.0], [0.0])
    >>> frr.tolist(), far.tolist()
    ([0.0, 0.0, 0.5, 1.0], [1.0, 0.0, 0.0, 0.0])
    """
    bonafide = np.asarray(bonafide_scores, dtype=np.float64).ravel()
    spoof = np.asarray(spoof_scores, dtype=np.float64).ravel()
    if bonafide.size == 0 or spoof.size == 0:
        raise ValueError(
            f"need both bona fide and spoof scores, got {bonafide.size} bona fide "
            f"and {spoof.size} spoof"
        )
    scores = np.concatenate([bonafide, spoof])
    labels = np.concatenate([np.ones(bonafide.size), np.zeros(spoof.size)])
    order = np.argsort(scores, kind="mergesort")
    labels = labels[order]
    bonafide_below = np.cumsum(labels)
    spoof_at_or_above = spoof.size - (np.arange(1, scores.size + 1) - bonafide_below)
    frr = np.concatenate([[0.0], bonafide_below / bonafide.size])
    far = np.concatenate([[1.0], spoof_at_or_above / spoof.size])
    thresholds = np.concatenate([[scores[order[0]] - 0.001], scores[order]])
    return frr, far, thresholds


def compute_eer(bonafide_scores, spoof_scores):
    """Equal error rate (a fraction) and its threshold.

    Example
    -------
    >>> eer, threshold = compute_eer([0.9, 0.8, 0.7, 0.3], [0.6, 0.4, 0.2, 0.1, 0.05])
    >>> round(eer, 4)
    0.225
    """
    frr, far, thresholds = det_curve(bonafide_scores, spoof_scores)
    index = int(np.argmin(np.abs(frr - far)))
    return float((frr[index] + far[index]) / 2), float(thresholds[index])


def read_asv_scores(path):
    """Reads an organisers' ASV score file: ``CM_KEY ASV_KEY SCORE`` lines.

    Returns a dict with arrays ``target``, ``nontarget`` and ``spoof``.
    Errors name the file and line.
    """
    groups = {"target": [], "nontarget": [], "spoof": []}
    with open(path, encoding="utf-8") as fin:
        for line_no, line in enumerate(fin, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[1] not in groups:
                raise ValueError(
                    f"{path}:{line_no}: expected 'CM_KEY target|nontarget|spoof SCORE', "
                    f"got {line.strip()!r}"
                )
            try:
                groups[fields[1]].append(float(fields[2]))
            except ValueError:
                raise ValueError(f"{path}:{line_no}: score {fields[2]!r} is not a number") from None
    for key, values in groups.items():
        if not values:
            raise ValueError(f"{path}: no {key} trials")
    return {key: np.asarray(values) for key, values in groups.items()}


def _asv_error_rates(asv, threshold):
    pfa_asv = float(np.mean(asv["nontarget"] >= threshold))
    pmiss_asv = float(np.mean(asv["target"] < threshold))
    pmiss_spoof_asv = float(np.mean(asv["spoof"] < threshold))
    return pfa_asv, pmiss_asv, pmiss_spoof_asv


@dataclass(frozen=True)
class TandemCostModel:
    """The normalised t-DCF of a countermeasure with the ASV system fixed:
    ``(c0 + c1 Pmiss_cm + c2 Pfa_cm) / norm``, linear in the CM's miss and
    false-alarm rates like ``CostModel.normalised_dcf``, so min t-DCF is a
    minimum DCF under other costs (``tandem_costs``). ``threshold`` exists
    for code that sorts trials with a cost model; the t-DCF has no actual
    decision threshold."""

    c0: float
    c1: float
    c2: float
    norm: float
    threshold: float = 0.0

    def normalised_dcf(self, p_miss, p_fa):
        """The t-DCF of miss and false-alarm rates, normalised by ``norm``."""
        return (self.c0 + self.c1 * p_miss + self.c2 * p_fa) / self.norm


def tandem_costs(asv, formulation):
    """The ``TandemCostModel`` of the organisers' ASV scores, ``formulation``
    2019 (ASVspoof 2019) or 2021 (LA 2021 only; never compare the two).

    Example
    -------
    >>> asv = {"target": np.array([3.0, 4.0]), "nontarget": np.array([-3.0, -2.0]),
    ...        "spoof": np.array([2.5, -1.0])}
    >>> round(tandem_costs(asv, 2019).c2, 4)
    0.5
    """
    asv_threshold = compute_eer(asv["target"], asv["nontarget"])[1]
    pfa_asv, pmiss_asv, pmiss_spoof_asv = _asv_error_rates(asv, asv_threshold)
    if formulation == 2019:
        p_spoof, p_tar, p_non = 0.05, 0.9405, 0.0095
        cmiss_asv, cfa_asv, cmiss_cm, cfa_cm = 1.0, 10.0, 1.0, 10.0
        c1 = p_tar * (cmiss_cm - cmiss_asv * pmiss_asv) - p_non * cfa_asv * pfa_asv
        c2 = cfa_cm * p_spoof * (1 - pmiss_spoof_asv)
        if c1 <= 0 or c2 <= 0:
            raise ValueError("ASV error rates give a degenerate t-DCF (C1 or C2 not positive)")
        return TandemCostModel(0.0, c1, c2, min(c1, c2))
    if formulation == 2021:
        p_spoof = 0.05
        p_tar, p_non = (1 - p_spoof) * 0.99, (1 - p_spoof) * 0.01
        cmiss, cfa, cfa_spoof = 1.0, 10.0, 10.0
        c0 = p_tar * cmiss * pmiss_asv + p_non * cfa * pfa_asv
        c1 = p_tar * cmiss - c0
        c2 = p_spoof * cfa_spoof * (1.0 - pmiss_spoof_asv)
        return TandemCostModel(c0, c1, c2, c0 + min(c1, c2))
    raise ValueError(f"t-DCF formulation must be 2019 or 2021, got {formulation!r}")


def min_tdcf_2019(bonafide_scores, spoof_scores, asv):
    """Minimum normalised t-DCF, ASVspoof 2019 formulation.

    Arguments
    ---------
    bonafide_scores, spoof_scores : array-like
        Countermeasure scores.
    asv : dict
        ASV scores ``target``, ``nontarget``, ``spoof`` (see ``read_asv_scores``).

    Example
    -------
    >>> asv = {"target": np.array([3.0, 4.0]), "nontarget": np.array([-3.0, -2.0]),
    ...        "spoof": np.array([2.5, -1.0])}
    >>> round(min_tdcf_2019([1.0, 2.0], [-1.0, 0.0], asv), 4)
    0.0
    """
    pmiss_cm, pfa_cm, _ = det_curve(bonafide_scores, spoof_scores)
    return float(tandem_costs(asv, 2019).normalised_dcf(pmiss_cm, pfa_cm).min())


def min_tdcf_2021(bonafide_scores, spoof_scores, asv):
    """Minimum normalised t-DCF, ASVspoof 2021 formulation (LA 2021 only).

    Never compare its values with 2019 t-DCF figures.

    Example
    -------
    >>> asv = {"target": np.array([3.0, 4.0]), "nontarget": np.array([-3.0, -2.0]),
    ...        "spoof": np.array([2.5, -1.0])}
    >>> round(min_tdcf_2021([1.0, 2.0], [-1.0, 0.0], asv), 4)  # a perfect CM keeps the ASV's cost
    0.0868
    """
    pmiss_cm, pfa_cm, _ = det_curve(bonafide_scores, spoof_scores)
    return float(tandem_costs(asv, 2021).normalised_dcf(pmiss_cm, pfa_cm).min())


def eer_by_group(scores, labels, groups):
    """EER of each spoof group against all bona fide trials.

    Arguments
    ---------
    scores : array-like
        One score per trial.
    labels : array-like of str
        ``"bonafide"`` or ``"spoof"`` per trial.
    groups : array-like of str
        Group (attack id, method, ...) per trial; bona fide groups are ignored.

    Returns
    -------
    dict
        Group -> EER (fraction), sorted by group name.

    Example
    -------
    >>> eer_by_group([0.9, 0.8, 0.1, 0.85], ["bonafide", "bonafide", "spoof", "spoof"],
    ...              ["-", "-", "A07", "A08"])
    {'A07': 0.0, 'A08': 0.75}
    """
    is_bonafide = np.array([label == "bonafide" for label in labels], dtype=bool)
    by_group = metrics_by_group(scores, is_bonafide, groups)
    by_group.pop("pooled")
    return {group: metrics["eer"] / 100 for group, metrics in by_group.items()}


# ---------------------------------------------------------------------------
# ASVspoof 5 detection costs (Track 1) and Cllr. Scores are read as
# natural-log likelihood ratios (bona fide vs spoof) by actDCF and Cllr.


@dataclass(frozen=True)
class CostModel:
    """The detection cost model of ASVspoof 5 Track 1 (the default) or another.

    ``beta = Cmiss (1 - Pspoof) / (Cfa Pspoof)``; the Bayes decision
    threshold on LLRs is ``-ln(beta)``; the effective bona fide prior is
    ``beta / (1 + beta)``, the one prior that makes the three-parameter
    cost model a one-parameter one.

    Example
    -------
    >>> costs = CostModel()
    >>> round(costs.beta, 4), round(costs.threshold, 4), round(costs.effective_prior, 4)
    (1.9, -0.6419, 0.6552)
    """

    p_spoof: float = 0.05
    c_miss: float = 1.0
    c_fa: float = 10.0

    @property
    def beta(self):
        """Cost-weighted odds of a false alarm against a miss."""
        return self.c_miss * (1 - self.p_spoof) / (self.c_fa * self.p_spoof)

    @property
    def threshold(self):
        """The Bayes threshold on LLRs of this cost model, ``-log(beta)``."""
        return -float(np.log(self.beta))

    @property
    def effective_prior(self):
        """The bona fide prior with the same Bayes decisions as this cost model."""
        return self.beta / (1 + self.beta)

    def normalised_dcf(self, p_miss, p_fa):
        """Cost of miss and false-alarm rates, normalised by the cost of the
        better of the two trivial systems (accept all / reject all)."""
        miss_weight = self.c_miss * (1 - self.p_spoof)
        fa_weight = self.c_fa * self.p_spoof
        return (miss_weight * p_miss + fa_weight * p_fa) / min(miss_weight, fa_weight)


ASVSPOOF5_COSTS = CostModel()


def min_dcf(bonafide_scores, spoof_scores, costs=ASVSPOOF5_COSTS):
    """Minimum normalised DCF over all thresholds (ASVspoof 5 Track 1).

    Example
    -------
    >>> min_dcf([2, 1, 0.5, -1], [-2, -0.5, 0.8, -3])
    0.5
    """
    p_miss, p_fa, _ = det_curve(bonafide_scores, spoof_scores)
    return float(costs.normalised_dcf(p_miss, p_fa).min())


def act_dcf(bonafide_scores, spoof_scores, costs=ASVSPOOF5_COSTS):
    """Normalised DCF at the Bayes threshold ``-ln(beta)`` on LLR scores:
    a miss is a bona fide score below it, a false alarm a spoof score at or
    above it.

    Example
    -------
    >>> round(act_dcf([2, 1, 0.5, -1], [-2, -0.5, 0.8, -3]), 6)
    0.975
    """
    bonafide = np.asarray(bonafide_scores, dtype=np.float64)
    spoof = np.asarray(spoof_scores, dtype=np.float64)
    p_miss = float(np.mean(bonafide < costs.threshold))
    p_fa = float(np.mean(spoof >= costs.threshold))
    return float(costs.normalised_dcf(p_miss, p_fa))


def cllr(bonafide_scores, spoof_scores):
    """Log-likelihood-ratio cost in bits:
    ``0.5 [mean log2(1 + e^-s) over bona fide + mean log2(1 + e^s) over spoof]``.

    Example
    -------
    >>> round(cllr([2, 1, 0.5, -1], [-2, -0.5, 0.8, -3]), 6)
    0.730044
    """
    bonafide = np.asarray(bonafide_scores, dtype=np.float64)
    spoof = np.asarray(spoof_scores, dtype=np.float64)
    # logaddexp(0, x) = ln(1 + e^x) without overflow for large |x|.
    nats = np.mean(np.logaddexp(0.0, -bonafide)) + np.mean(np.logaddexp(0.0, spoof))
    return float(0.5 * nats / np.log(2.0))


class _SortedTrials:
    """Trials sorted once by score (ties bona fide first, as ``det_curve``
    orders them) with each trial's error and Cllr term at hand, so that the
    costs of any subset come from a mask over that order instead of a new
    sort: this is what keeps breakdowns over 680k trials fast."""

    def __init__(self, scores, is_bonafide, costs=ASVSPOOF5_COSTS):
        scores = np.asarray(scores, dtype=np.float64).ravel()
        is_bonafide = np.asarray(is_bonafide, dtype=bool).ravel()
        # Bona fide trials first, then a stable sort: ties keep them first.
        grouped = np.concatenate([np.flatnonzero(is_bonafide), np.flatnonzero(~is_bonafide)])
        self.order = grouped[np.argsort(scores[grouped], kind="stable")]
        self.costs_model = costs
        ordered = scores[self.order]
        self.bonafide = is_bonafide[self.order]
        # A miss is a bona fide score below the Bayes threshold, a false
        # alarm a spoof score at or above it (actDCF); Cllr terms in nats.
        self.error = np.where(self.bonafide, ordered < costs.threshold, ordered >= costs.threshold)
        self.cllr_term = np.logaddexp(0.0, np.where(self.bonafide, -ordered, ordered))

    def costs(self, selected=None):
        """``detection_metrics`` of the trials where ``selected`` (a mask in
        sorted order; all trials if None)."""
        labels, error, term = self.bonafide, self.error, self.cllr_term
        if selected is not None:
            labels, error, term = labels[selected], error[selected], term[selected]
        n_bonafide = int(labels.sum())
        n_spoof = labels.size - n_bonafide
        if n_bonafide == 0 or n_spoof == 0:
            raise ValueError(
                f"need both bona fide and spoof scores, got {n_bonafide} bona fide "
                f"and {n_spoof} spoof"
            )
        bonafide_below = np.cumsum(labels)
        frr = np.concatenate([[0.0], bonafide_below / n_bonafide])
        spoof_above = n_spoof - (np.arange(1, labels.size + 1) - bonafide_below)
        far = np.concatenate([[1.0], spoof_above / n_spoof])
        index = int(np.argmin(np.abs(frr - far)))
        p_miss = np.count_nonzero(error & labels) / n_bonafide
        p_fa = np.count_nonzero(error & ~labels) / n_spoof
        nats = term[labels].sum() / n_bonafide + term[~labels].sum() / n_spoof
        return {
            "eer": float(100 * (frr[index] + far[index]) / 2),
            "min_dcf": float(self.costs_model.normalised_dcf(frr, far).min()),
            "act_dcf": float(self.costs_model.normalised_dcf(p_miss, p_fa)),
            "cllr": float(0.5 * nats / np.log(2.0)),
        }


def detection_metrics(bonafide_scores, spoof_scores, costs=ASVSPOOF5_COSTS):
    """EER (%), minDCF, actDCF and Cllr (bits) of one condition, from one
    sort of the scores.

    Example
    -------
    >>> m = detection_metrics([2, 1, 0.5, -1], [-2, -0.5, 0.8, -3])
    >>> {k: round(v, 6) for k, v in m.items()}
    {'eer': 25.0, 'min_dcf': 0.5, 'act_dcf': 0.975, 'cllr': 0.730044}
    """
    bonafide = np.asarray(bonafide_scores, dtype=np.float64).ravel()
    spoof = np.asarray(spoof_scores, dtype=np.float64).ravel()
    trials = _SortedTrials(
        np.concatenate([bonafide, spoof]),
        np.concatenate([np.ones(bonafide.size, bool), np.zeros(spoof.size, bool)]),
        costs,
    )
    return trials.costs()


def group_codes(groups):
    """Integer codes and sorted names of a sequence of group labels (a dict
    lookup: numpy's string sort in ``np.unique`` is far slower).

    Example
    -------
    >>> codes, names = group_codes(["b", "a", "b"])
    >>> codes.tolist(), names
    ([1, 0, 1], ['a', 'b'])
    """
    groups = list(groups)
    names = sorted(set(groups))
    lookup = {name: code for code, name in enumerate(names)}
    return np.fromiter(map(lookup.__getitem__, groups), dtype=np.int64, count=len(groups)), names


def metrics_by_group(scores, is_bonafide, groups, shared_bonafide=True, costs=ASVSPOOF5_COSTS):
    """``detection_metrics`` per group, plus ``"pooled"`` over every trial.

    Arguments
    ---------
    scores : array-like
    is_bonafide : array-like of bool
    groups : array-like of str
        Group of each trial (attack, codec, ...).
    shared_bonafide : bool
        True (attacks): each group's spoofs against all bona fide trials,
        whose own group is ignored. False (conditions such as codecs, which
        bona fide trials have too): each group's bona fide trials against its
        spoofs; a group lacking either class is left out.

    Example
    -------
    >>> out = metrics_by_group([2, 1, -2, 0.8], [True, True, False, False], ["-", "-", "A1", "A2"])
    >>> {g: m["eer"] for g, m in out.items()}
    {'A1': 0.0, 'A2': 0.0, 'pooled': 0.0}
    """
    return metrics_by_groups(scores, is_bonafide, {"groups": (groups, shared_bonafide)}, costs)["groups"]


def metrics_by_groups(scores, is_bonafide, groupings, costs=ASVSPOOF5_COSTS):
    """Several ``metrics_by_group`` breakdowns of the same trials from one sort.

    Arguments
    ---------
    groupings : dict
        Name -> ``(groups, shared_bonafide)``.

    Example
    -------
    >>> out = metrics_by_groups([2, 1, -2, 0.8], [True, True, False, False],
    ...                         {"by_attack": (["-", "-", "A1", "A2"], True),
    ...                          "by_codec": (["C1", "C2", "C1", "C2"], False)})
    >>> {name: sorted(groups) for name, groups in out.items()}
    {'by_attack': ['A1', 'A2', 'pooled'], 'by_codec': ['C1', 'C2', 'pooled']}
    """
    trials = _SortedTrials(scores, is_bonafide, costs)
    bonafide = trials.bonafide
    pooled = trials.costs()
    results = {}
    for grouping, (groups, shared_bonafide) in groupings.items():
        codes, names = group_codes(groups)
        codes = codes[trials.order]
        results[grouping] = {}
        for code, name in enumerate(names):
            in_group = codes == code
            spoof = in_group & ~bonafide
            selected = (bonafide | spoof) if shared_bonafide else in_group
            if spoof.any() and (selected & bonafide).any():
                results[grouping][name] = trials.costs(selected)
        results[grouping]["pooled"] = dict(pooled)
    return results


def records_eer(records):
    """EER (%) of a list of ``ScoreRecord`` (the dev figure of checkpoint
    selection, computed every epoch: the EER alone, not ``record_metrics``).

    Example
    -------
    >>> from lobes.evaluation.scores import ScoreRecord as R
    >>> records_eer([R("a", "-", "bonafide", 2.0), R("b", "A01", "spoof", -1.0)])
    0.0
    """
    scores = np.array([r.score for r in records])
    keys = np.array([r.key for r in records])
    return float(100 * compute_eer(scores[keys == "bonafide"], scores[keys == "spoof"])[0])


def record_metrics(records, costs=ASVSPOOF5_COSTS, groupings=None):
    """The metrics every recipe reports for a list of ``ScoreRecord``: EER (%),
    trial counts, minDCF, actDCF and Cllr (bits), EER per attack (%) and
    ``by_attack``, the four metrics per attack with ``pooled``.

    ``groupings`` adds breakdowns from the same sort, e.g.
    ``{"by_codec": (codec of each record, False)}`` (see ``metrics_by_groups``).

    Example
    -------
    >>> from lobes.evaluation.scores import ScoreRecord as R
    >>> m = record_metrics([R("a", "-", "bonafide", 2.0), R("b", "A01", "spoof", -1.0)])
    >>> m["eer"], m["n_trials"], m["eer_by_attack"], m["act_dcf"], sorted(m["by_attack"])
    (0.0, 2, {'A01': 0.0}, 0.0, ['A01', 'pooled'])
    """
    scores = np.fromiter((r.score for r in records), dtype=np.float64, count=len(records))
    is_bonafide = np.array([r.key == "bonafide" for r in records], dtype=bool)
    groupings = {"by_attack": ([r.attack for r in records], True), **(groupings or {})}
    breakdowns = metrics_by_groups(scores, is_bonafide, groupings, costs)
    pooled = breakdowns["by_attack"]["pooled"]
    return {
        "eer": pooled["eer"],
        "n_trials": len(records),
        "n_bonafide": int(is_bonafide.sum()),
        "n_spoof": int((~is_bonafide).sum()),
        "min_dcf": pooled["min_dcf"],
        "act_dcf": pooled["act_dcf"],
        "cllr": pooled["cllr"],
        "eer_by_attack": {
            attack: metrics["eer"]
            for attack, metrics in breakdowns["by_attack"].items()
            if attack != "pooled"
        },
        **breakdowns,
    }
