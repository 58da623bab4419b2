"""Countermeasure metrics: EER, min t-DCF (ASVspoof 2019 and 2021), breakdowns.

All scores follow one convention: higher means more bona fide.
The EER is the official ASVspoof definition (stable sort, one threshold per
sorted trial, EER = mean of miss and false-alarm rates where they are
closest), computed in O(n log n).
"""

from collections import defaultdict

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
    p_spoof, p_tar, p_non = 0.05, 0.9405, 0.0095
    cmiss_asv, cfa_asv, cmiss_cm, cfa_cm = 1.0, 10.0, 1.0, 10.0
    asv_threshold = compute_eer(asv["target"], asv["nontarget"])[1]
    pfa_asv, pmiss_asv, pmiss_spoof_asv = _asv_error_rates(asv, asv_threshold)
    pmiss_cm, pfa_cm, _ = det_curve(bonafide_scores, spoof_scores)
    c1 = p_tar * (cmiss_cm - cmiss_asv * pmiss_asv) - p_non * cfa_asv * pfa_asv
    c2 = cfa_cm * p_spoof * (1 - pmiss_spoof_asv)
    if c1 <= 0 or c2 <= 0:
        raise ValueError("ASV error rates give a degenerate t-DCF (C1 or C2 not positive)")
    tdcf = (c1 * pmiss_cm + c2 * pfa_cm) / min(c1, c2)
    return float(tdcf.min())


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
    p_spoof = 0.05
    p_tar, p_non = (1 - p_spoof) * 0.99, (1 - p_spoof) * 0.01
    cmiss, cfa, cfa_spoof = 1.0, 10.0, 10.0
    asv_threshold = compute_eer(asv["target"], asv["nontarget"])[1]
    pfa_asv, pmiss_asv, pmiss_spoof_asv = _asv_error_rates(asv, asv_threshold)
    pfa_spoof_asv = 1.0 - pmiss_spoof_asv
    pmiss_cm, pfa_cm, _ = det_curve(bonafide_scores, spoof_scores)
    c0 = p_tar * cmiss * pmiss_asv + p_non * cfa * pfa_asv
    c1 = p_tar * cmiss - c0
    c2 = p_spoof * cfa_spoof * pfa_spoof_asv
    tdcf = (c0 + c1 * pmiss_cm + c2 * pfa_cm) / (c0 + min(c1, c2))
    return float(tdcf.min())


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
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    bonafide = scores[labels == "bonafide"]
    by_group = defaultdict(list)
    for score, label, group in zip(scores, labels, groups):
        if label != "bonafide":
            by_group[group].append(score)
    return {group: compute_eer(bonafide, by_group[group])[0] for group in sorted(by_group)}
