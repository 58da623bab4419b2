"""Spoofed regions from a timeline of window (or frame) decisions.

Overlapping windows are first turned into a partition of the time axis:
every instant belongs to the window whose centre is nearest (``center_spans``),
so a region's edges fall between window centres rather than at the far edges
of the first and last spoofed windows. Spoofed spans are then merged
(``merge_regions``): touching ones join, gaps up to ``merge_gap`` seconds are
bridged, and regions shorter than ``min_duration`` are dropped. A frame-level
model (PartialSpoof, 20 ms frames) goes through the same merge with
``frame_spans``, so both write the same RTTM (``lobes.evaluation.rttm``).

Edges are therefore placed to within half a hop of where the windows'
decisions change; where a window half covers a spliced region, its decision
depends on the model, so the documented tolerance of a region's edge is
half a window plus half a hop (tests/integration/test_long_audio.py).
"""

import numpy as np

from lobes.evaluation.timeline import calibrate


def center_spans(starts, ends):
    """Partitions ``[starts[0], ends[-1]]`` among windows by nearest centre.

    Example
    -------
    >>> center_spans([0.0, 2.0, 4.0], [4.0, 6.0, 8.0])
    [(0.0, 3.0), (3.0, 5.0), (5.0, 8.0)]
    """
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    if starts.size == 0:
        return []
    if np.any(np.diff(starts) < 0) or np.any(ends < starts):
        raise ValueError("windows must be sorted by start and end after they start")
    centres = (starts + ends) / 2
    cuts = (centres[:-1] + centres[1:]) / 2
    left = np.concatenate([[starts[0]], cuts])
    right = np.concatenate([cuts, [ends[-1]]])
    return [(float(a), float(b)) for a, b in zip(left, right)]


def frame_spans(n_frames, frame_seconds=0.02):
    """Spans of ``n_frames`` consecutive frames.

    Example
    -------
    >>> frame_spans(3, 0.5)
    [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5)]
    """
    return [(i * frame_seconds, (i + 1) * frame_seconds) for i in range(int(n_frames))]


def merge_regions(spans, is_spoof, min_duration=0.0, merge_gap=0.0):
    """Spoofed regions ``[(start, end), ...]`` from spans and their decisions.

    Arguments
    ---------
    spans : list of (float, float)
        Sorted, non-overlapping spans (seconds).
    is_spoof : list of bool
        Decision of each span.
    min_duration : float
        Regions shorter than this (after merging) are dropped.
    merge_gap : float
        Regions separated by at most this many seconds are joined.

    Example
    -------
    >>> spans = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    >>> merge_regions(spans, [0, 1, 1, 0, 1, 0])
    [(1.0, 3.0), (4.0, 5.0)]
    >>> merge_regions(spans, [0, 1, 1, 0, 1, 0], merge_gap=1.0)
    [(1.0, 5.0)]
    >>> merge_regions(spans, [0, 1, 1, 0, 1, 0], min_duration=1.5)
    [(1.0, 3.0)]
    """
    if min_duration < 0 or merge_gap < 0:
        raise ValueError(f"min_duration and merge_gap must be >= 0, got {min_duration}, {merge_gap}")
    if len(spans) != len(is_spoof):
        raise ValueError(f"{len(spans)} spans for {len(is_spoof)} decisions")
    regions = []
    for (start, end), spoof in zip(spans, is_spoof):
        if not spoof:
            continue
        if regions and start - regions[-1][1] <= merge_gap + 1e-9:
            regions[-1] = (regions[-1][0], max(regions[-1][1], float(end)))
        else:
            regions.append((float(start), float(end)))
    return [(s, e) for s, e in regions if e - s >= min_duration - 1e-9]


def spoof_decisions(scores, calibration=None, prior=0.5, threshold=None, posterior=0.5):
    """Per-window spoof decisions: the calibrated posterior of bona fide below
    ``posterior`` when ``threshold`` is None and there is a calibration,
    else the raw score below ``threshold`` (as ``lobes.detect.decision``).

    Example
    -------
    >>> spoof_decisions([1.0, -2.0], threshold=0.0).tolist()
    [False, True]
    """
    scores = np.asarray(scores, dtype=np.float64)
    if threshold is not None:
        return scores < threshold
    _, bona_fide = calibrate(scores, calibration, prior)
    if bona_fide is None:
        raise ValueError(
            "spoofed regions need a decision rule: the model folder has no "
            "calibration.json, so give a raw-score --threshold"
        )
    return bona_fide < posterior


def timeline_regions(rows, min_duration=0.0, merge_gap=0.0, **rule):
    """Spoofed regions of one file's timeline rows (``lobes.evaluation.timeline``).

    ``rule``: ``calibration``, ``prior``, ``threshold``, ``posterior`` as in
    ``spoof_decisions``.
    """
    if not rows:
        return []
    spans = center_spans([r["start"] for r in rows], [r["end"] for r in rows])
    decisions = spoof_decisions([r["score"] for r in rows], **rule)
    return merge_regions(spans, decisions, min_duration, merge_gap)


def frame_regions(frame_scores, threshold, frame_seconds=0.02, min_duration=0.0, merge_gap=0.0):
    """Spoofed regions of a frame-level model (bona fide logits per frame,
    spoof below ``threshold``), at the model's own frame resolution.

    Example
    -------
    >>> frame_regions([1.0, -1.0, -2.0, 3.0], 0.0, frame_seconds=0.5)
    [(0.5, 1.5)]
    """
    scores = np.asarray(frame_scores, dtype=np.float64).ravel()
    return merge_regions(frame_spans(scores.size, frame_seconds), scores < threshold,
                         min_duration, merge_gap)
