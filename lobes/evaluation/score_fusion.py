"""Score-level fusion of several runs by logistic regression on dev scores.

    python -m lobes.fuse RUN [RUN ...] --out DIR [--prior P]

Each RUN is an output folder holding ``scores/dev.txt`` and ``results.json``
(what every recipe writes), or a multi-depth run whose ``N<n>/`` folders are
such folders (each depth is then one system). The fusion ``w . s + b`` is
fitted on the runs' dev scores by the prior-weighted logistic regression of
``lobes.evaluation.calibration`` (so fused scores are calibrated LLRs), applied to every
test set all runs scored, and written to ``DIR/scores/<set>.txt`` with the
metrics of every recipe in ``DIR/results.json``. Runs must have scored the
same trials (with the same keys); otherwise nothing is fused and the error
names the differing trials.
"""

import argparse
import os
import sys

import numpy as np

from lobes.evaluation.calibration import fit_logistic, prior_or_default
from lobes.evaluation.metrics import ASVSPOOF5_COSTS, record_metrics
from lobes.evaluation.scores import ScoreRecord, read_scores, write_scores
from lobes.utils.run_folder import DEV_SET, depth_folders, is_scored_run, score_path, write_results
from lobes.utils.run_folder import scored_sets as run_scored_sets

SHOWN_TRIALS = 5


class FusionError(ValueError):
    """Runs that cannot be fused; the message says why."""


def expand_runs(runs):
    """Run folders as systems: a multi-depth run gives its ``N<n>/`` folders.

    Example
    -------
    >>> expand_runs(["/no/such/run"])  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    lobes.evaluation.score_fusion.FusionError: /no/such/run: no scores/dev.txt (nor N<n>/scores/dev.txt): score the
    dev set with the recipe first
    """
    systems = []
    for run in runs:
        if is_scored_run(run):
            systems.append(run)
            continue
        branches = depth_folders(run)
        if not branches:
            raise FusionError(
                f"{run}: no scores/{DEV_SET}.txt (nor N<n>/scores/{DEV_SET}.txt): "
                "score the dev set with the recipe first"
            )
        systems.extend(branches)
    if len(set(map(os.path.abspath, systems))) != len(systems):
        raise FusionError(f"a run is given twice: {systems}")
    if len(systems) < 2:
        raise FusionError(
            f"fusion needs at least two systems, got {systems} (one run's calibrated "
            "scores are written by the recipe itself)"
        )
    return systems


def scored_sets(system):
    """Names of the sets a run scored, from its ``results.json``."""
    try:
        return run_scored_sets(system)
    except FileNotFoundError as err:  # a set name leaving the folder stays an UnsafePathError
        raise FusionError(f"{system}: {err}") from None


def _listing(ids):
    shown = ", ".join(sorted(ids)[:SHOWN_TRIALS])
    more = len(ids) - SHOWN_TRIALS
    return f"{len(ids)} ({shown}{f', ... {more} more' if more > 0 else ''})"


def aligned_scores(systems, name):
    """The set's records of the first system and a (n_trials, n_systems)
    score matrix in their order; refuses differing trial sets or keys."""
    per_system = [read_scores(score_path(s, name)) for s in systems]
    return align_records(systems, per_system, name)


def align_records(systems, per_system, name):
    """``aligned_scores`` of records already read (``per_system[k]`` of
    ``systems[k]``, a run or a score file named in errors)."""
    reference = {r.utt_id: r for r in per_system[0]}
    columns = []
    for system, records in zip(systems, per_system):
        by_id = {r.utt_id: r for r in records}
        only_reference, only_here = reference.keys() - by_id.keys(), by_id.keys() - reference.keys()
        if only_reference or only_here:
            raise FusionError(
                f"{name}: {systems[0]} and {system} scored different trials: "
                f"only in the first {_listing(only_reference)}; only in the second {_listing(only_here)}"
            )
        clash = [u for u, r in by_id.items() if r.key != reference[u].key]
        if clash:
            raise FusionError(
                f"{name}: {systems[0]} and {system} disagree on the key of trials {_listing(clash)}"
            )
        columns.append([by_id[r.utt_id].score for r in per_system[0]])
    return per_system[0], np.array(columns, dtype=np.float64).T


def fuse(runs, out, prior=None, costs=ASVSPOOF5_COSTS):
    """Fits the fusion on dev, applies it to every common set; returns the results dict."""
    systems = expand_runs(runs)
    prior = prior_or_default(prior, costs)
    sets = [set(scored_sets(s)) for s in systems]
    common = sorted(set.intersection(*sets) - {DEV_SET})
    partial = sorted(set.union(*sets) - set.intersection(*sets) - {DEV_SET})
    # Every set's trials are checked before anything is written.
    aligned = {name: aligned_scores(systems, name) for name in [DEV_SET, *common]}
    dev_records, dev_matrix = aligned[DEV_SET]
    is_bonafide = np.array([r.key == "bonafide" for r in dev_records])
    weights, bias = fit_logistic(dev_matrix, is_bonafide, prior)
    results = {
        "systems": [os.path.abspath(s) for s in systems],
        "fusion": {"weights": weights.tolist(), "bias": bias, "prior": prior,
                   "fitted_on": f"scores/{DEV_SET}.txt"},
        "not_fused": partial,
        "test_sets": {},
    }
    for name, (records, matrix) in aligned.items():
        fused = matrix @ weights + bias
        fused_records = [
            ScoreRecord(r.utt_id, r.attack, r.key, float(s)) for r, s in zip(records, fused)
        ]
        path = score_path(out, name)
        write_scores(path, fused_records)
        metrics = record_metrics(fused_records, costs)
        metrics["score_file"] = path
        if name == DEV_SET:
            metrics["note"] = "the fusion was fitted on these trials"
        results["test_sets"][name] = metrics
    write_results(out, results)
    return results


def main(argv=None):
    """``python -m lobes.fuse``: fuses runs' scores, fitted on dev."""
    parser = argparse.ArgumentParser(
        prog="python -m lobes.fuse",
        description="Logistic-regression fusion of several runs' scores, fitted on dev.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run output folders (a multi-depth run stands for its N<n>/ depths)")
    parser.add_argument("--out", required=True, help="output folder for scores/ and results.json")
    parser.add_argument("--prior", type=float, default=None,
                        help="bona fide prior of the fit (default: the cost model's effective prior, 0.655)")
    args = parser.parse_args(argv)
    try:
        results = fuse(args.runs, args.out, args.prior)
    except (FusionError, ValueError) as err:
        sys.exit(f"lobes.fuse: {err}")
    weights = " ".join(f"{w:.4f}" for w in results["fusion"]["weights"])
    print(f"fusion weights {weights}, bias {results['fusion']['bias']:.4f} "
          f"(prior {results['fusion']['prior']:.3f}) over {len(results['systems'])} systems")
    for name, metrics in results["test_sets"].items():
        print(f"  {name:<10} EER {metrics['eer']:7.3f} %  minDCF {metrics['min_dcf']:.4f}  "
              f"actDCF {metrics['act_dcf']:.4f}  Cllr {metrics['cllr']:.4f}  ({metrics['n_trials']} trials)")
    if results["not_fused"]:
        print(f"  not scored by every run, left out: {', '.join(results['not_fused'])}")


if __name__ == "__main__":
    main()
