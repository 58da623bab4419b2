"""Is N layers as good as all of them? Intervals, tests against the full
depth and the non-inferiority answer for a sweep (used by ``lobes.experiments.aggregate``).

For each dataset, test set, SSL and head, every run (depth x seed) scored
the same trials, so all of them are resampled with the very same bootstrap
draws (``lobes.evaluation.bootstrap.shared_replicates``). Per depth N:

- the interval of the seed-mean EER (the seeds' EERs averaged within each
  replicate: the uncertainty from the test trials, seeds held fixed);
- the paired difference to the full depth (the largest N of the cell),
  seed-mean against seed-mean, with a two-sided p-value;
- non-inferiority: N is not worse than the full depth by more than the
  margin (EER points) when the upper end of that difference's interval is
  below the margin.

The answer for a cell is the smallest such N (the full depth when none is
smaller). Trials are resampled, or whole speakers where the speakers of a
test set are given (its manifest: ``lobes.aggregate --manifest``), as a
run's own intervals do (results.json does not keep the speakers); cells
whose runs scored different trials, or too few, get the reason.
"""

import os
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from lobes.evaluation.bootstrap import (
    DEFAULT_REPLICATES,
    DEFAULT_SEED,
    check_counts,
    difference_test,
    percentile_interval,
    shared_replicates,
)
from lobes.evaluation.score_fusion import FusionError, align_records
from lobes.evaluation.score_stats import speaker_clusters
from lobes.evaluation.scores import read_scores
from lobes.utils.run_folder import score_path

DEFAULT_MARGIN = 0.5
SIGNIFICANCE = 0.05


class SpeakerError(ValueError):
    """Speakers were given for a test set but cannot be resampled (a trial
    without one, too few): an error for the whole command, not one cell."""


@dataclass(frozen=True)
class SpeakerMap:
    """The speakers of a test set's trials (``mapping``: trial id ->
    speaker) and the manifest they were read from (``origin``)."""

    origin: str
    mapping: dict


def run_score_file(record, test_set):
    """``scores/<set>.txt`` beside a run's ``results.json``."""
    return score_path(os.path.dirname(record["path"]), test_set)


def _cell_runs(records):
    groups = defaultdict(list)
    for record in records:
        for test_set in record["eer"]:
            groups[(record["dataset"], test_set, record["ssl"], record["head"])].append(record)
    return groups


def _aligned(runs, test_set, name, speakers=None):
    """(score matrix (trials x runs), bona fide mask, speaker clusters or None)."""
    paths = [run_score_file(r, test_set) for r in runs]
    try:
        per_system = [read_scores(p, both_classes=True) for p in paths]
        records, matrix = align_records(paths, per_system, name)
    except FusionError as err:
        raise ValueError(str(err)) from None
    is_bonafide = np.array([r.key == "bonafide" for r in records])
    n_b, n_s = int(is_bonafide.sum()), int((~is_bonafide).sum())
    check_counts(n_b, n_s)  # too few trials: this cell's reason
    if speakers is None:
        return matrix, is_bonafide, None
    origin = f"{name}: the manifest {speakers.origin}"
    try:
        clusters = speaker_clusters(records, speakers.mapping, origin)
    except ValueError as err:
        raise SpeakerError(str(err)) from None
    try:
        check_counts(n_b, n_s, len(set(clusters)))
    except ValueError as err:  # too few speakers
        raise SpeakerError(f"{origin}: {err}") from None
    return matrix, is_bonafide, clusters


def depth_statistics(records, margin=DEFAULT_MARGIN, replicates=DEFAULT_REPLICATES, seed=DEFAULT_SEED,
                     speakers=None):
    """``(cells, answers)``.

    cells[((ssl, head, N), (dataset, test set))]: ``interval`` of the
    seed-mean EER, ``full_depth``, and, below the full depth, ``vs_full``
    (``difference``, its ``interval``, ``p_value``, ``non_inferior``); or
    ``unavailable`` with the reason. answers: one dict per (dataset, test
    set, SSL, head) with ``smallest_non_inferior`` (None with a ``reason``)
    and the resampled ``unit`` (``"trial"`` or ``"speaker"``, with
    ``n_speakers``).

    ``speakers``: ``{(dataset, test set): SpeakerMap}``; those test
    sets resample whole speakers.
    """
    cells, answers = {}, []
    for (dataset, test_set, ssl, head), runs in sorted(_cell_runs(records).items()):
        runs = sorted(runs, key=lambda r: (r["n_layers"], str(r["seed"])))
        depths = sorted({r["n_layers"] for r in runs})
        full = depths[-1]
        column = (dataset, test_set)
        answer = {"dataset": dataset, "test_set": test_set, "ssl": ssl, "head": head,
                  "full_depth": full, "margin": margin, "depths": depths}
        try:
            matrix, is_bonafide, clusters = _aligned(runs, test_set, f"{dataset} {test_set} {ssl} {head}",
                                                     (speakers or {}).get(column))
        except SpeakerError:
            raise
        except (OSError, ValueError) as err:
            for depth in depths:
                cells[((ssl, head, depth), column)] = {"unavailable": str(err)}
            answers.append({**answer, "smallest_non_inferior": None, "reason": str(err)})
            continue
        if clusters is None:
            answer["unit"] = "trial"
        else:
            answer.update(unit="speaker", n_speakers=len(set(clusters)))
        values = shared_replicates(matrix.T, is_bonafide, clusters, replicates, seed, metrics=("eer",))
        replicate_eer = np.stack([v["eer"] for v in values], axis=1)
        point = np.array([r["eer"][test_set] for r in runs], dtype=np.float64)
        columns = {d: [k for k, r in enumerate(runs) if r["n_layers"] == d] for d in depths}
        seed_mean = {d: replicate_eer[:, columns[d]].mean(axis=1) for d in depths}
        passing = [full]
        for depth in depths:
            cell = {"interval": percentile_interval(seed_mean[depth]), "full_depth": full,
                    "n_seeds": len(columns[depth])}
            if depth != full:
                test = difference_test(seed_mean[depth] - seed_mean[full], margin=margin)
                test["difference"] = float(point[columns[depth]].mean() - point[columns[full]].mean())
                cell["vs_full"] = test
                if test.get("non_inferior"):
                    passing.append(depth)
            cells[((ssl, head, depth), column)] = cell
        answers.append({**answer, "smallest_non_inferior": min(passing), "n_trials": int(is_bonafide.size)})
    return cells, answers


def cell_suffix(cell):
    """Text added to an EER table cell: ``[low, high]`` and ``*`` when the
    depth differs from the full depth at p < 0.05; nothing without an
    interval.

    Example
    -------
    >>> cell_suffix({"interval": {"low": 1.0, "high": 2.0}, "vs_full": {"p_value": 0.01}})
    ' [1.00, 2.00]*'
    >>> cell_suffix({"unavailable": "too few trials"})
    ''
    """
    interval = (cell or {}).get("interval", {})
    if "low" not in interval:
        return ""
    p_value = cell.get("vs_full", {}).get("p_value")
    mark = "*" if p_value is not None and p_value < SIGNIFICANCE else ""
    return f" [{interval['low']:.2f}, {interval['high']:.2f}]{mark}"


def format_noninferiority(answers, cells, margin):
    """The Markdown table of the non-inferiority answers, with every
    shallower depth's difference to the full depth.

    Example
    -------
    >>> answers = [{"dataset": "D", "test_set": "eval", "ssl": "s", "head": "ffn", "full_depth": 4,
    ...             "depths": [2, 4], "smallest_non_inferior": 2, "unit": "speaker", "n_speakers": 40}]
    >>> cells = {(("s", "ffn", 2), ("D", "eval")): {"vs_full": {
    ...     "difference": 0.1, "interval": {"low": -0.2, "high": 0.3}, "p_value": 0.5}}}
    >>> print(format_noninferiority(answers, cells, 0.5).splitlines()[2])
    | D | eval | s | ffn | 4 | **2** | N=2: +0.10 [-0.20, +0.30] | 40 speakers |
    """
    lines = [
        f"| dataset | test set | SSL | head | full N | smallest N within {margin} EER points of full "
        "| EER(N) - EER(full) [95 % interval] | resampled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a in answers:
        smallest = a["smallest_non_inferior"]
        unit = f"{a['n_speakers']} speakers" if a.get("unit") == "speaker" else "trials"
        if smallest is None:
            result, detail = "-", f"no interval: {a['reason']}"
        else:
            result = f"**{smallest}**"
            parts = []
            for depth in a["depths"][:-1]:
                test = cells[((a["ssl"], a["head"], depth), (a["dataset"], a["test_set"]))]["vs_full"]
                iv = test["interval"]
                text = (f"{test['difference']:+.2f} [{iv['low']:+.2f}, {iv['high']:+.2f}]" if "low" in iv
                        else f"{test['difference']:+.2f} (no interval: {iv['unavailable']})")
                parts.append(f"N={depth}: {text}")
            detail = "; ".join(parts) or "only the full depth was run"
        lines.append(f"| {a['dataset']} | {a['test_set']} | {a['ssl']} | {a['head']} | {a['full_depth']} "
                     f"| {result} | {detail} | {unit if smallest is not None else '-'} |")
    lines += [
        "",
        f"Smallest depth N whose seed-mean EER is not worse than the full depth's by more than "
        f"{margin} EER points: the upper end of the 95 % paired bootstrap interval of "
        "EER(N) - EER(full) lies below the margin (test trials, or whole speakers where a "
        "manifest gave them, resampled with the same draws for every run; seeds held fixed). "
        "The full depth when no smaller one qualifies.",
    ]
    return "\n".join(lines) + "\n"


def interval_bands(rows, cells, column):
    """``{"ssl head": [(N, low, high)]}`` of the seed-mean EER intervals of one
    column, for the EER-versus-depth figure."""
    bands = {}
    for ssl, head, depth in rows:
        interval = (cells.get(((ssl, head, depth), column)) or {}).get("interval", {})
        if "low" in interval:
            bands.setdefault(f"{ssl} {head}", []).append((depth, interval["low"], interval["high"]))
    return bands
