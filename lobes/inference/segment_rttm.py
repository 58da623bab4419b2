"""Spoofed regions of a PartialSpoof segment model, or of its labels, as RTTM.

    python -m lobes.segment_rttm results/.../scores/eval_segments_160ms.txt \
        --threshold 0.0 --out eval_160ms.rttm [--min-duration 0.32] [--merge-gap 0.16]
    python -m lobes.segment_rttm --labels results/.../manifests/eval.csv \
        --resolution 0.02 --out eval_truth.rttm

Reads a segment score file that the PartialSpoof recipe writes
(``UTT_ID SEGMENT_INDEX SCORE``, bona fide logits pooled to segments of the
resolution in the file name, or ``--resolution``), marks segments below
``--threshold`` spoofed and merges them with the same rule and writer as
``lobes.detect --rttm`` (``lobes.evaluation.regions``, ``lobes.evaluation.rttm``),
so regions come at the model's own resolution.

With ``--labels``, the true spoofed regions instead: the segments labelled
spoof in a PartialSpoof manifest (its ``seglab_<ms>`` column, written by
``partialspoof_prepare.py``; 20 ms by default), the reference that
``python -m lobes.region_eval timeline.csv eval_truth.rttm`` scores a
timeline against.
"""

import argparse
import csv
import re
import sys

from lobes.evaluation.regions import frame_regions
from lobes.evaluation.rttm import write_rttm
from lobes.evaluation.segments import label_column, labels_from_string, read_segment_scores


def resolution_from_name(path):
    """Segment length in seconds from a ``*_segments_<ms>ms.txt`` name, or None.

    Example
    -------
    >>> resolution_from_name("scores/eval_segments_160ms.txt")
    0.16
    """
    match = re.search(r"_(\d+)ms\.txt$", str(path))
    return int(match.group(1)) / 1000 if match else None


def segment_regions(path, threshold, resolution=None, min_duration=0.0, merge_gap=0.0):
    """``{utt_id: [(start, end), ...]}`` of a segment score file.

    Example
    -------
    >>> path = getfixture("tmp_path") / "eval_segments_160ms.txt"
    >>> _ = path.write_text("U1 0 2.0\\nU1 1 -1.0\\nU1 2 -3.0\\nU1 3 1.0\\nU2 0 1.0\\n")
    >>> segment_regions(path, 0.0)
    {'U1': [(0.16, 0.48)], 'U2': []}
    """
    resolution = resolution or resolution_from_name(path)
    if not resolution or resolution <= 0:
        raise ValueError(f"{path}: give --resolution (not in the file name as _<ms>ms.txt)")
    return {
        utt: _rounded(frame_regions(scores, threshold, resolution, min_duration, merge_gap))
        for utt, scores in read_segment_scores(path).items()
    }


def _rounded(regions):
    return [(round(start, 6), round(end, 6)) for start, end in regions]


def label_regions(manifest, resolution=0.02):
    """``{utt_id: [(start, end), ...]}``: the true spoofed regions (segments
    labelled 0) of every utterance of a PartialSpoof manifest, at
    ``resolution`` seconds; bona fide utterances get none.

    Example
    -------
    >>> path = getfixture("tmp_path") / "eval.csv"
    >>> _ = path.write_text("ID,seglab_20\\nU1,110011\\nU2,1111\\n")
    >>> label_regions(path)
    {'U1': [(0.04, 0.08)], 'U2': []}
    """
    column = label_column(resolution)
    with open(manifest, encoding="utf-8", newline="") as fin:
        reader = csv.DictReader(fin)
        fields = reader.fieldnames or []
        if "ID" not in fields or column not in fields:
            found = [f for f in fields if f.startswith("seglab_")]
            raise ValueError(f"{manifest}:1: a manifest with ID and {column} columns is needed "
                             f"(--resolution {resolution}); its label columns: {found or 'none'}")
        regions = {}
        for row in reader:
            try:
                labels = labels_from_string(row[column])
            except ValueError as err:
                raise ValueError(f"{manifest}:{reader.line_num}: {row['ID']}: {err}") from None
            # A segment is spoof below 0.5: label 0.
            regions[row["ID"]] = _rounded(frame_regions(labels, 0.5, resolution))
    return regions


def main(argv=None):
    """``python -m lobes.segment_rttm``: writes spoofed regions as RTTM."""
    parser = argparse.ArgumentParser(prog="python -m lobes.segment_rttm",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("segment_scores", nargs="?", help="a recipe's <set>_segments_<ms>ms.txt")
    parser.add_argument("--labels", metavar="MANIFEST",
                        help="instead: the true regions of a PartialSpoof manifest's segment labels")
    parser.add_argument("--threshold", type=float, help="segments scored below this are spoofed")
    parser.add_argument("--resolution", type=float,
                        help="segment length (s); default from the score file's name, 0.02 with --labels")
    parser.add_argument("--min-duration", type=float, default=0.0)
    parser.add_argument("--merge-gap", type=float, default=0.0)
    parser.add_argument("--out", required=True, help="RTTM file to write")
    args = parser.parse_args(argv)
    if (args.segment_scores is None) == (args.labels is None):
        parser.error("give a segment score file or --labels MANIFEST (one of them)")
    if args.labels and (args.threshold is not None or args.min_duration or args.merge_gap):
        parser.error("--labels writes the labelled regions as they are: no --threshold, "
                     "--min-duration or --merge-gap")
    if args.segment_scores and args.threshold is None:
        parser.error("--threshold is required with a segment score file")
    try:
        if args.labels:
            regions = label_regions(args.labels, args.resolution or 0.02)
        else:
            regions = segment_regions(args.segment_scores, args.threshold, args.resolution,
                                      args.min_duration, args.merge_gap)
        write_rttm(args.out, regions)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{sum(map(len, regions.values()))} spoofed regions in {len(regions)} utterances "
          f"written to {args.out}", file=sys.stderr)
    return 0
