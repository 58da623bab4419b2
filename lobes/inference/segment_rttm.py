"""Spoofed regions of a PartialSpoof segment model, as RTTM.

    python -m lobes.segment_rttm results/.../scores/eval_segments_160ms.txt \
        --threshold 0.0 --out eval_160ms.rttm [--min-duration 0.32] [--merge-gap 0.16]

Reads a segment score file that the PartialSpoof recipe writes
(``UTT_ID SEGMENT_INDEX SCORE``, bona fide logits pooled to segments of the
resolution in the file name, or ``--resolution``), marks segments below
``--threshold`` spoofed and merges them with the same rule and writer as
``lobes.detect --rttm`` (``lobes.evaluation.regions``, ``lobes.evaluation.rttm``),
so regions come at the model's own resolution.
"""

import argparse
import re
import sys

from lobes.evaluation.rttm import write_rttm
from lobes.evaluation.segments import read_segment_scores
from lobes.evaluation.regions import frame_regions


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
        utt: [(round(s, 6), round(e, 6)) for s, e in
              frame_regions(scores, threshold, resolution, min_duration, merge_gap)]
        for utt, scores in read_segment_scores(path).items()
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lobes.segment_rttm",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("segment_scores", help="a recipe's <set>_segments_<ms>ms.txt")
    parser.add_argument("--threshold", type=float, required=True,
                        help="segments scored below this are spoofed")
    parser.add_argument("--resolution", type=float, help="segment length (s); default from the name")
    parser.add_argument("--min-duration", type=float, default=0.0)
    parser.add_argument("--merge-gap", type=float, default=0.0)
    parser.add_argument("--out", required=True, help="RTTM file to write")
    args = parser.parse_args(argv)
    try:
        regions = segment_regions(args.segment_scores, args.threshold, args.resolution,
                                  args.min_duration, args.merge_gap)
        write_rttm(args.out, regions)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{sum(map(len, regions.values()))} spoofed regions in {len(regions)} utterances "
          f"written to {args.out}", file=sys.stderr)
    return 0
