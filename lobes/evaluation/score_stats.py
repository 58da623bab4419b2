"""Every metric of score files with its bootstrap interval.

    python -m lobes.stats FILE [FILE ...] [--json] [--manifest CSV]
                          [--replicates 1000] [--seed 0]

FILE holds ``UTT ATTACK KEY SCORE`` lines (what the recipes write to
``scores/<set>.txt``). For each file: EER (%), minDCF, actDCF and Cllr with
95 % percentile bootstrap intervals, pooled and per attack. ``--manifest``
(a recipe manifest CSV with ``ID`` and ``speaker`` columns) resamples whole
speakers instead of trials. ``--json`` prints one JSON object per line, one
per file.
"""

import argparse
import csv
import json
import sys

from lobes.evaluation.bootstrap import DEFAULT_REPLICATES, DEFAULT_SEED, METRICS, record_intervals
from lobes.evaluation.metrics import record_metrics
from lobes.evaluation.scores import read_scores

LABELS = {"eer": "EER (%)", "min_dcf": "minDCF", "act_dcf": "actDCF", "cllr": "Cllr (bits)"}


def read_speakers(path):
    """Trial id -> speaker from a manifest CSV (``ID`` and ``speaker``
    columns); errors name the file and line.

    Example
    -------
    >>> path = getfixture("tmp_path") / "eval.csv"
    >>> _ = path.write_text("ID,duration,wav,label,attack,speaker\\nu1,1.0,a.wav,bonafide,-,S1\\n")
    >>> read_speakers(path)
    {'u1': 'S1'}
    """
    with open(path, encoding="utf-8", newline="") as fin:
        reader = csv.DictReader(fin)
        if not reader.fieldnames or not {"ID", "speaker"} <= set(reader.fieldnames):
            raise ValueError(f"{path}:1: a manifest needs 'ID' and 'speaker' columns, got {reader.fieldnames}")
        speakers = {}
        for row in reader:
            if row["ID"] in speakers:
                raise ValueError(f"{path}:{reader.line_num}: trial {row['ID']!r} listed twice")
            speakers[row["ID"]] = "" if row["speaker"] in ("", "-", "None") else row["speaker"]
    return speakers


def speaker_clusters(records, speakers, origin):
    """The speaker of each of ``records``, in order: the clusters of a
    speaker bootstrap. A trial without a speaker is an error naming
    ``origin`` (where the speakers come from) and the trial.

    Example
    -------
    >>> from lobes.evaluation.scores import ScoreRecord as R
    >>> speaker_clusters([R("u1", "-", "bonafide", 1.0)], {"u1": "S1"}, "eval.csv")
    ['S1']
    >>> speaker_clusters([R("u2", "-", "bonafide", 1.0)], {"u1": "S1"}, "eval.csv")
    Traceback (most recent call last):
    ...
    ValueError: eval.csv: 1 trials have no speaker (e.g. u2)
    """
    missing = [r.utt_id for r in records if not speakers.get(r.utt_id)]
    if missing:
        raise ValueError(f"{origin}: {len(missing)} trials have no speaker (e.g. {missing[0]})")
    return [speakers[r.utt_id] for r in records]


def interval_text(interval, digits):
    """``[low, high]`` or why there is none."""
    if "unavailable" in interval:
        return f"(no interval: {interval['unavailable']})"
    return f"[{interval['low']:.{digits}f}, {interval['high']:.{digits}f}]"


def file_statistics(path, speakers=None, replicates=DEFAULT_REPLICATES, seed=DEFAULT_SEED):
    """Metrics and intervals of one score file, as ``--json`` prints them.

    Example
    -------
    >>> import numpy as np
    >>> path = getfixture("tmp_path") / "eval.txt"
    >>> rng = np.random.default_rng(0)
    >>> lines = [f"b{i} - bonafide {s:.4f}" for i, s in enumerate(rng.normal(2, 1, 50))]
    >>> lines += [f"s{i} A01 spoof {s:.4f}" for i, s in enumerate(rng.normal(0, 1, 50))]
    >>> _ = path.write_text("\\n".join(lines) + "\\n")
    >>> out = file_statistics(path, replicates=100)
    >>> out["n_trials"], out["intervals"]["unit"], sorted(out["metrics"])
    (100, 'trial', ['act_dcf', 'cllr', 'eer', 'min_dcf'])
    """
    records = read_scores(path, both_classes=True)
    if speakers is not None:
        missing = [r.utt_id for r in records if r.utt_id not in speakers]
        if missing:
            raise ValueError(f"{path}: {len(missing)} trials are not in the manifest (e.g. {missing[0]})")
    metrics = record_metrics(records)
    intervals = record_intervals(records, speakers, replicates=replicates, seed=seed)
    return {
        "file": str(path),
        "n_trials": metrics["n_trials"],
        "n_bonafide": metrics["n_bonafide"],
        "n_spoof": metrics["n_spoof"],
        "metrics": {m: metrics[m] for m in METRICS},
        "by_attack": {a: {m: v[m] for m in METRICS} for a, v in metrics["by_attack"].items()},
        "intervals": intervals,
    }


def format_statistics(stats):
    """The human-readable table of ``file_statistics``."""
    iv = stats["intervals"]
    unit = iv["unit"] + "s" + (f", {iv['n_clusters']} clusters" if iv["n_clusters"] else "")
    lines = [f"== {stats['file']}: {stats['n_trials']} trials ({stats['n_bonafide']} bona fide, "
             f"{stats['n_spoof']} spoof); {int(100 * iv['level'])} % intervals, "
             f"{iv['replicates']} replicates resampling {unit} =="]
    for metric in METRICS:
        digits = 3 if metric == "eer" else 4
        lines.append(f"  {LABELS[metric]:<12} {stats['metrics'][metric]:9.{digits}f}  "
                     f"{interval_text(iv['pooled'][metric], digits)}")
    attacks = [a for a in stats["by_attack"] if a != "pooled"]
    if len(attacks) > 1:
        lines.append("  EER (%) per attack:")
        for attack in attacks:
            lines.append(f"    {attack:<10} {stats['by_attack'][attack]['eer']:8.3f}  "
                         f"{interval_text(iv['by_attack'][attack]['eer'], 3)}")
    return "\n".join(lines)


def main(argv=None):
    """``python -m lobes.stats``: metrics with bootstrap intervals of score files."""
    parser = argparse.ArgumentParser(prog="python -m lobes.stats", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", metavar="FILE", help="score files (UTT ATTACK KEY SCORE lines)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line, one per file")
    parser.add_argument("--manifest", help="manifest CSV with ID and speaker columns: resample speakers")
    parser.add_argument(
        "--replicates", type=int, default=DEFAULT_REPLICATES, help="bootstrap replicates (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="bootstrap seed (default 0)")
    args = parser.parse_args(argv)
    if args.replicates < 1:
        parser.error("--replicates must be at least 1")
    try:
        speakers = read_speakers(args.manifest) if args.manifest else None
        for path in args.files:
            stats = file_statistics(path, speakers, args.replicates, args.seed)
            print(json.dumps(stats) if args.json else format_statistics(stats), flush=True)
    except (OSError, ValueError) as err:
        sys.exit(f"lobes.stats: {err}")
