"""``lobes.detect`` options and outputs for long recordings: the timeline,
spoofed regions as RTTM and a JSON summary.

The per-file score file and printout stay exactly as without these options;
they add files next to it.
"""

import json
import os
import sys

from lobes.dataio.dataset import SAMPLE_RATE
from lobes.evaluation.calibration import check_prior, prior_or_default, read_calibration
from lobes.evaluation.regions import timeline_regions
from lobes.evaluation.rttm import file_id, write_rttm
from lobes.evaluation.timeline import timeline_format, window_rows, write_timeline
from lobes.utils.files import atomic_write_text


def add_arguments(parser):
    """Adds the timeline, region and streaming options to ``lobes.detect``'s parser."""
    group = parser.add_argument_group("long recordings and streams")
    group.add_argument("--timeline", help="write one row per window (file, start, end, score, "
                       "llr, posterior) to this .csv or .jsonl file")
    group.add_argument("--rttm", help="write spoofed regions to this RTTM file")
    group.add_argument("--json", dest="json_out", help="write per-file scores and spoofed "
                       "regions to this JSON file")
    group.add_argument("--region-posterior", type=float, default=0.5,
                       help="a window is spoofed when its posterior of bona fide is below this "
                            "(needs calibration.json in the model folder; --threshold, when "
                            "given, decides on raw scores instead)")
    group.add_argument("--min-duration", type=float, default=0.0,
                       help="drop spoofed regions shorter than this (s)")
    group.add_argument("--merge-gap", type=float, default=0.0,
                       help="join spoofed regions separated by at most this (s)")
    group.add_argument("--stream", action="store_true",
                       help="with PATH '-': score 16-bit PCM or WAV from stdin as it arrives "
                            "and print a row per window")
    group.add_argument("--rate", type=int, default=SAMPLE_RATE,
                       help="sample rate of raw PCM on stdin (a WAV header overrides it)")
    group.add_argument("--channels", type=int, default=1,
                       help="channels of raw PCM on stdin (a WAV header overrides it)")


def bona_fide_prior(args):
    """The ``--prior`` of ``lobes.detect`` (the posterior column and region
    decisions): the ASVspoof 5 cost model's effective prior when not given,
    as for the per-file ``--output prob``."""
    return prior_or_default(args.prior)


def no_rule_message(model_dir):
    """Why ``--rttm`` cannot decide: no calibration and no ``--threshold``."""
    return (f"--rttm needs a decision rule: {model_dir} has no calibration.json "
            "(posterior rule), so give a raw-score --threshold")


def check_arguments(args):
    """Usage errors caught before the model loads (returned as a message, or None)."""
    if args.timeline:
        try:
            timeline_format(args.timeline)
        except ValueError as err:
            return str(err)
    try:
        check_prior(args.prior, option="--prior")
    except ValueError as err:
        return str(err)
    if not 0.0 < args.region_posterior < 1.0:
        return "--region-posterior must lie in (0, 1)"
    if args.min_duration < 0 or args.merge_gap < 0:
        return "--min-duration and --merge-gap must be >= 0"
    if args.stream and args.paths != ["-"]:
        return "--stream reads standard input: give '-' as the only PATH"
    if args.rttm and args.threshold is None and os.path.isdir(args.model_dir):
        # A local folder is checked before scoring; a hub id once it is loaded.
        try:
            if read_calibration(args.model_dir) is None:
                return no_rule_message(args.model_dir)
        except ValueError as err:
            return str(err)
    return None


def wanted(args):
    """Whether per-window results are needed."""
    return bool(args.timeline or args.rttm or args.json_out)


def window_seconds(args, detector):
    """Length of the scored windows: ``--window``, else the crop; None for
    a model scoring whole files (``eval_crop: full``) without ``--window``:
    a file's one row spans all of it."""
    if args.window is not None:
        return args.window
    return None if detector.crop_mode == "full" else detector.max_samples / SAMPLE_RATE


def write_outputs(args, files, results, detector):
    """Writes ``--timeline``, ``--rttm`` and ``--json`` for the scored files;
    returns 0, or 2 after printing the error when one cannot be written.

    ``results``: path -> ``DetectionResult`` (files that failed are absent).
    LLRs and posteriors use the calibration the loader read with the model
    (``detector.calibration``: a run folder's, a release's, or one from the
    hub). Without a decision rule (no calibration, no ``--threshold``) the
    JSON's regions are null.
    """
    try:
        _write_outputs(args, files, results, args.model_dir, window_seconds(args, detector),
                       detector.calibration)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _write_outputs(args, files, results, model_dir, window, calibration):
    rows = {path: window_rows(path, results[path], window, calibration, bona_fide_prior(args))
            for path in files if path in results}
    if args.timeline:
        write_timeline(args.timeline, [row for path in rows for row in rows[path]])
    if not (args.rttm or args.json_out):
        return
    rule = {"threshold": args.threshold, "calibration": calibration, "prior": bona_fide_prior(args),
            "posterior": args.region_posterior}
    decidable = args.threshold is not None or calibration is not None
    if args.rttm and not decidable:
        raise ValueError(no_rule_message(model_dir))
    regions = {path: timeline_regions(file_rows, args.min_duration, args.merge_gap, **rule)
               if decidable else None for path, file_rows in rows.items()}
    if args.rttm:
        write_rttm(args.rttm, regions)
    if args.json_out:
        summary = {
            "model": os.path.abspath(model_dir),
            "calibrated": calibration is not None,
            "region_rule": {
                "decision": ("raw score < threshold" if args.threshold is not None
                             else "posterior of bona fide < region_posterior" if decidable
                             else None),
                "threshold": args.threshold, "region_posterior": args.region_posterior,
                "prior": bona_fide_prior(args), "min_duration": args.min_duration,
                "merge_gap": args.merge_gap, "window": window,  # None: whole files
            },
            "files": [
                {"file": path, "file_id": file_id(path), "score": results[path].score,
                 "duration": results[path].duration,
                 "regions": None if regions[path] is None else
                 [{"start": round(s, 3), "end": round(e, 3)} for s, e in regions[path]]}
                for path in rows
            ],
        }
        atomic_write_text(args.json_out, json.dumps(summary, indent=2) + "\n")
