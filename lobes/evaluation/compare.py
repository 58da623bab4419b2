"""Paired comparison of two systems scored on the same trials.

    python -m lobes.compare A B [--metric EER] [--margin 0.1] [--json]
                            [--set eval] [--calibrated] [--manifest CSV]
                            [--replicates 1000] [--seed 0]

A and B are score files, or run (or branch, or depth) folders holding
``scores/<set>.txt`` and ``results.json``; for folders every test set both
scored is compared (``--set`` picks one; ``dev`` selected the checkpoint
and is only compared when named). The result is B - A with a paired
bootstrap interval (both systems resampled with the same draws), a
two-sided p-value for "no difference", and with ``--margin`` (metric units:
EER in % points) the non-inferiority verdict: B is not worse than A by more
than the margin when the interval's upper end is below it. Trial sets that
differ are refused, naming trials (as ``lobes.evaluation.score_fusion`` does).
"""

import argparse
import json
import os
import sys

import numpy as np

from lobes.evaluation.bootstrap import DEFAULT_REPLICATES, DEFAULT_SEED, paired_comparison
from lobes.evaluation.score_fusion import FusionError, align_records, scored_sets
from lobes.evaluation.score_stats import LABELS, interval_text, read_speakers, speaker_clusters
from lobes.evaluation.scores import read_scores
from lobes.utils.run_folder import DEV_SET, SCORES_DIR, results_path, score_path

METRIC_NAMES = {"EER": "eer", "MINDCF": "min_dcf", "ACTDCF": "act_dcf", "CLLR": "cllr"}


def metric_key(name):
    """``EER``, ``minDCF``, ``actDCF``, ``Cllr`` (any case) -> metric key.

    Example
    -------
    >>> metric_key("minDCF"), metric_key("eer")
    ('min_dcf', 'eer')
    """
    key = METRIC_NAMES.get(name.upper().replace("_", ""))
    if key is None:
        raise ValueError(f"unknown metric {name!r}: use one of EER, minDCF, actDCF, Cllr")
    return key


def score_files(system, set_name=None, calibrated=False):
    """``{set: score file}`` of a score file or run folder."""
    if os.path.isfile(system):
        if set_name is not None:
            raise ValueError(f"{system} is a score file: --set applies to run folders only")
        return {os.path.basename(system): system}
    if not os.path.isdir(system):
        raise ValueError(f"{system}: no such score file or run folder")
    if os.path.isfile(results_path(system)):
        names = scored_sets(system)
    else:
        folder = os.path.join(system, SCORES_DIR)
        names = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".txt")
                       and not f.endswith(".calibrated.txt")) if os.path.isdir(folder) else []
    if set_name is not None:
        names = [n for n in names if n == set_name]
    else:
        names = [n for n in names if n != DEV_SET]
    paths = {n: score_path(system, n, calibrated=calibrated)
             for n in names}
    if not paths:
        wanted = f"set {set_name!r}" if set_name else "test set"
        raise ValueError(f"{system}: no scored {wanted} (scores/<set>.txt)")
    return paths


def pair_sets(a, b, set_name=None, calibrated=False):
    """(name, file of A, file of B) for each set both systems scored."""
    files_a, files_b = score_files(a, set_name, calibrated), score_files(b, set_name, calibrated)
    if os.path.isfile(a) or os.path.isfile(b):
        if len(files_a) != 1 or len(files_b) != 1:
            raise ValueError(f"compare a score file with a score file or a run with --set: "
                             f"{a} has sets {sorted(files_a)}, {b} has {sorted(files_b)}")
        return [("scores", next(iter(files_a.values())), next(iter(files_b.values())))]
    common = sorted(files_a.keys() & files_b.keys())
    if not common:
        raise ValueError(f"{a} scored {sorted(files_a)} and {b} scored {sorted(files_b)}: no set in common")
    return [(name, files_a[name], files_b[name]) for name in common]


def compare_files(path_a, path_b, name="scores", metric="eer", margin=None, speakers=None,
                  replicates=DEFAULT_REPLICATES, seed=DEFAULT_SEED):
    """``paired_comparison`` of two score files of the same trials."""
    per_system = [read_scores(path, both_classes=True) for path in (path_a, path_b)]
    try:
        records, matrix = align_records([path_a, path_b], per_system, name)
    except FusionError as err:
        raise ValueError(str(err)) from None
    clusters = None
    if speakers is not None:
        clusters = speaker_clusters(records, speakers, f"{path_a} (in the manifest)")
    is_bonafide = np.array([r.key == "bonafide" for r in records])
    out = paired_comparison(matrix[:, 0], matrix[:, 1], is_bonafide, metric, margin, clusters,
                            replicates, seed)
    if clusters is not None:
        out["unit"] = "speaker"
    return {"set": name, "a_file": str(path_a), "b_file": str(path_b), "n_trials": len(records), **out}


def format_comparison(out):
    """The printed lines of one comparison of systems A and B."""
    metric = out["metric"]
    digits = 3 if metric == "eer" else 4
    interval = out["interval"]
    lines = [f"== {out['set']}: {out['n_trials']} trials, {LABELS[metric]}; A = {out['a_file']}, "
             f"B = {out['b_file']} ==",
             f"  A {out['a']:.{digits}f}   B {out['b']:.{digits}f}   B - A {out['difference']:+.{digits}f} "
             f"{interval_text(interval, digits)} ({int(100 * out['level'])} % paired bootstrap, "
             f"{out['replicates']} replicates resampling {out['unit']}s)"]
    if out["p_value"] is not None:
        lines.append(f"  two-sided p = {out['p_value']:.4f} (no difference)")
    if "margin" in out:
        if out["non_inferior"] is None:
            verdict = "undecided (no interval)"
        elif out["non_inferior"]:
            verdict = f"B is NOT worse than A by more than {out['margin']} (upper end below the margin)"
        else:
            verdict = f"B is not shown to be within {out['margin']} of A (upper end at or above the margin)"
        lines.append(f"  non-inferiority: {verdict}")
    return "\n".join(lines)


def main(argv=None):
    """``python -m lobes.compare``: the paired comparison of two score files."""
    parser = argparse.ArgumentParser(prog="python -m lobes.compare",
                                     description="Paired bootstrap comparison B - A of two systems on the same trials.")
    parser.add_argument("a", metavar="A", help="score file, run folder or branch folder (the reference)")
    parser.add_argument("b", metavar="B", help="score file, run folder or branch folder (the candidate)")
    parser.add_argument("--metric", default="EER", help="EER (% points), minDCF, actDCF or Cllr (default EER)")
    parser.add_argument("--margin", type=float, default=None,
                        help="non-inferiority margin in metric units (B not worse than A by more)")
    parser.add_argument("--set", dest="set_name", default=None, help="only this scored set of run folders")
    parser.add_argument("--calibrated", action="store_true", help="compare scores/<set>.calibrated.txt")
    parser.add_argument("--manifest", help="manifest CSV with ID and speaker columns: resample speakers")
    parser.add_argument("--replicates", type=int, default=DEFAULT_REPLICATES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--json", action="store_true", help="one JSON object per line, one per set")
    args = parser.parse_args(argv)
    if args.replicates < 1:
        parser.error("--replicates must be at least 1")
    if args.margin is not None and args.margin < 0:
        parser.error("--margin must be positive (a tolerated worsening)")
    try:
        metric = metric_key(args.metric)
        speakers = read_speakers(args.manifest) if args.manifest else None
        for name, path_a, path_b in pair_sets(args.a, args.b, args.set_name, args.calibrated):
            out = compare_files(path_a, path_b, name, metric, args.margin, speakers,
                                args.replicates, args.seed)
            print(json.dumps(out) if args.json else format_comparison(out), flush=True)
    except (OSError, ValueError) as err:
        sys.exit(f"lobes.compare: {err}")

