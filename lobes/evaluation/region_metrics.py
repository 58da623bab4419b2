"""Long-form evaluation: timelines of long files against their spoofed regions.

Given the window timeline that ``lobes.detect --timeline`` writes and the
true spoofed regions of each file (RTTM, ``lobes.evaluation.rttm``), three
equal error rates:

- ``utterance_eer``: one score per file, the lowest window score (a file
  is spoof when any part is), label spoof when the file has a region;
- ``segment_eer``: one trial per window, spoof when the window overlaps a
  true region by more than ``min_overlap`` seconds (as PartialSpoof's coarse
  segment labels: a segment is spoof when any part of it is), at the
  window resolution of the timeline;
- ``range_eer``: time-weighted, the range-based EER of partial-spoof work:
  each instant takes the score of the window whose centre is nearest
  (``lobes.evaluation.regions.center_spans``); the miss rate is the share of
  bona fide *time* scored below the threshold and the false-alarm rate the
  share of spoofed time at or above it.

Running this for a few window lengths and hops on data with known regions
picks them on data rather than by guess.

    python -m lobes.region_eval timeline.csv truth.rttm

Files of the timeline absent from the RTTM are wholly bona fide.
"""

import argparse
import sys

import numpy as np

from lobes.evaluation.metrics import compute_eer
from lobes.evaluation.regions import center_spans
from lobes.evaluation.rttm import file_id, read_rttm
from lobes.evaluation.timeline import read_timeline


def weighted_eer(scores, is_bonafide, weights):
    """EER when each trial counts with a weight (a duration), ASVspoof style.

    Miss: weight share of bona fide trials below the threshold; false alarm:
    weight share of spoof trials at or above it. (``lobes.evaluation.metrics.det_curve``
    counts trials, each weighing one; this is its weighted form.)

    Example
    -------
    >>> round(weighted_eer([3.0, 2.0, 1.0, 0.0], [1, 0, 1, 0], [1.0, 1.0, 1.0, 1.0]), 3)
    0.5
    >>> weighted_eer([3.0, 2.0, 1.0, 0.0], [1, 1, 0, 0], [2.0, 0.5, 0.5, 2.0])
    0.0
    """
    scores = np.asarray(scores, dtype=np.float64)
    bona = np.asarray(is_bonafide, dtype=bool)
    weights = np.asarray(weights, dtype=np.float64)
    total_bona, total_spoof = weights[bona].sum(), weights[~bona].sum()
    if total_bona <= 0 or total_spoof <= 0:
        raise ValueError("range-based EER needs both bona fide and spoofed time")
    order = np.argsort(scores, kind="mergesort")
    scores, bona, weights = scores[order], bona[order], weights[order]
    # Thresholds between distinct scores: below index k all trials < threshold.
    cut = np.concatenate([[0], np.flatnonzero(np.diff(scores) > 0) + 1, [scores.size]])
    bona_below = np.concatenate([[0.0], np.cumsum(np.where(bona, weights, 0.0))])[cut]
    spoof_below = np.concatenate([[0.0], np.cumsum(np.where(bona, 0.0, weights))])[cut]
    miss = bona_below / total_bona
    false_alarm = 1.0 - spoof_below / total_spoof
    index = int(np.argmin(np.abs(miss - false_alarm)))
    return float((miss[index] + false_alarm[index]) / 2)


def _overlap(start, end, regions):
    return sum(max(0.0, min(end, e) - max(start, s)) for s, e in regions)


def region_metrics(rows, truth, min_overlap=0.0):
    """Utterance, segment (window) and range-based EERs, as fractions.

    Arguments
    ---------
    rows : list of dict
        Timeline rows (``file``, ``start``, ``end``, ``score``), any files.
    truth : dict
        RTTM file id -> true spoofed regions ``[(start, end), ...]``.
    min_overlap : float
        Seconds of overlap with a true region that make a window spoof.
    """
    by_file = {}
    for row in rows:
        by_file.setdefault(row["file"], []).append(row)
    utterance, windows, ranges = ([], []), ([], []), ([], [], [])
    for path, file_rows in by_file.items():
        file_rows.sort(key=lambda r: r["start"])
        regions = truth.get(file_id(path), [])
        scores = [r["score"] for r in file_rows]
        utterance[0].append(min(scores))
        utterance[1].append(not regions)
        for row in file_rows:
            windows[0].append(row["score"])
            windows[1].append(_overlap(row["start"], row["end"], regions) <= min_overlap)
        spans = center_spans([r["start"] for r in file_rows], [r["end"] for r in file_rows])
        for (start, end), score in zip(spans, scores):
            spoofed = _overlap(start, end, regions)
            ranges[0].extend([score, score])
            ranges[1].extend([False, True])
            ranges[2].extend([spoofed, (end - start) - spoofed])
    return {
        "files": len(by_file),
        "windows": len(windows[0]),
        "utterance_eer": _eer(*utterance, "files"),
        "segment_eer": _eer(*windows, "windows"),
        "range_eer": weighted_eer(*ranges),
    }


def _eer(scores, is_bonafide, what):
    scores, bona = np.asarray(scores), np.asarray(is_bonafide, dtype=bool)
    if bona.all() or not bona.any():
        return None  # one class only: undefined
    return compute_eer(scores[bona], scores[~bona])[0]


def main(argv=None):
    """``python -m lobes.region_eval``: scores spoofed regions against a reference RTTM."""
    parser = argparse.ArgumentParser(prog="python -m lobes.region_eval",
                                     description="EERs of a timeline against true spoofed regions")
    parser.add_argument("timeline", help="timeline (.csv or .jsonl) written by lobes.detect --timeline")
    parser.add_argument("rttm", help="true spoofed regions (RTTM)")
    parser.add_argument("--min-overlap", type=float, default=0.0,
                        help="seconds of overlap that make a window spoof")
    args = parser.parse_args(argv)
    try:
        metrics = region_metrics(read_timeline(args.timeline), read_rttm(args.rttm),
                                 args.min_overlap)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for key, value in metrics.items():
        shown = "n/a (one class)" if value is None else (
            f"{100 * value:.2f}%" if isinstance(value, float) else value)
        print(f"{key:15s} {shown}")
    return 0
