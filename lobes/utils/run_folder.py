"""The layout of a run's output folder, in one place.

A run folder (what a recipe writes to ``output_folder``) holds::

    hyperparams.yaml          the recipe's resolved YAML (code: see the README)
    save/CKPT+*/              SpeechBrain checkpoints (fusion, head, optimiser)
    scores/<set>.txt          one ``UTT ATTACK KEY SCORE`` line per trial
    scores/<set>.calibrated.txt
    calibration.json          the map fitted on dev scores
    results.json              config, layer weights, selected checkpoint, metrics

A multi-depth run writes one such folder per depth (``N<n>/``) and a branched
run one per branch (``<head>/N<n>/seed<s>/``). Everything that reads or writes
these names asks this module, so a change of layout is made here once.
"""

import json
import logging
import math
import os
import re
import zipfile

from speechbrain.utils.checkpoints import PARAMFILE_EXT
from speechbrain.utils.distributed import run_on_main

from lobes.utils.choices import SELECTION_METRICS
from lobes.utils.files import atomic_write_text
from lobes.utils.safe_paths import safe_name

logger = logging.getLogger(__name__)

HPARAMS_FILE = "hyperparams.yaml"
RESULTS_FILE = "results.json"
CALIBRATION_FILE = "calibration.json"
SAVE_DIR = "save"
SCORES_DIR = "scores"
DEV_SET = "dev"
# Branch folders: N<n> (depth), <head>/N<n>/seed<s> (head, depth, seed); a
# single run's one branch is the output folder itself.
SINGLE_RUN = "."
DEPTH_FOLDER = re.compile(r"N\d+")
SEED_FOLDER = re.compile(r"seed-?\d+")
HEAD_FOLDER = re.compile(r"\w+")


def ssl_name(source):
    """Short name of an SSL source (the last part of a hub id or path), as
    used for a sweep's per-SSL folders.

    Example
    -------
    >>> ssl_name("microsoft/wavlm-base-plus"), ssl_name("/models/tiny-hubert/")
    ('wavlm-base-plus', 'tiny-hubert')
    """
    return os.path.basename(os.path.normpath(source))


def depth_name(depth):
    """Name of a depth's branch and output subfolder, e.g. ``N4``."""
    return f"N{depth}"


def is_branch_name(name):
    """Whether ``name`` (``/``-separated, below a run folder) is a branch
    folder: ``N<n>`` of a multi-depth run or ``<head>/N<n>/seed<s>`` of a
    branched run.

    Example
    -------
    >>> [is_branch_name(n) for n in ("N4", "ffn/N4/seed42", "MyHead/N2/seed-1", "ffn/N4", "scores")]
    [True, True, True, False, False]
    """
    parts = name.split("/")
    if len(parts) == 1:
        return DEPTH_FOLDER.fullmatch(parts[0]) is not None
    return (
        len(parts) == 3 and HEAD_FOLDER.fullmatch(parts[0]) is not None
        and DEPTH_FOLDER.fullmatch(parts[1]) is not None and SEED_FOLDER.fullmatch(parts[2]) is not None
    )


def branch_name(head, depth, seed):
    """Subfolder of a branch: ``<head>/N<n>/seed<s>``.

    Example
    -------
    >>> branch_name("aasist", 4, 42)
    'aasist/N4/seed42'
    """
    return f"{head}/{depth_name(depth)}/{seed_name(seed)}"


def seed_name(seed):
    """Name of a seed's output subfolder, e.g. ``seed42``."""
    return f"seed{seed}"


def score_path(folder, name, calibrated=False):
    """``<folder>/scores/<name>.txt`` (``.calibrated.txt`` when calibrated).

    ``name`` is a set name: it must not name a path, so that a set name read
    from a ``results.json`` never writes outside the folder.

    Example
    -------
    >>> score_path("run", "eval", calibrated=True)
    'run/scores/eval.calibrated.txt'
    >>> score_path("run", "../x")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    lobes.utils.safe_paths.UnsafePathError: test set name '../x' is not a plain file name (no '/', '\\\\', '..' or
    control characters)
    """
    check_set_name(name)
    suffix = ".calibrated.txt" if calibrated else ".txt"
    return os.path.join(folder, SCORES_DIR, name + suffix)


def check_set_name(name, origin=""):
    """Refuses a set name that is a path (it would leave its folder)."""
    return safe_name(name, "test set name", origin)


def results_path(folder):
    """``<folder>/results.json``."""
    return os.path.join(folder, RESULTS_FILE)


def read_results(folder, missing_ok=False):
    """The ``results.json`` of a run folder as a dict (``{}`` when absent and
    ``missing_ok``)."""
    path = results_path(folder)
    if not os.path.isfile(path):
        if missing_ok:
            return {}
        raise FileNotFoundError(f"{folder}: no {RESULTS_FILE}")
    with open(path, encoding="utf-8") as fin:
        try:
            return json.load(fin)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


def write_results(folder, results):
    """Writes ``results`` to ``<folder>/results.json`` atomically."""
    atomic_write_text(results_path(folder), json.dumps(results, indent=2, default=float) + "\n")


def add_test_set(folder, name, metrics, **entries):
    """Adds test set ``name``'s ``metrics`` to ``folder``'s ``results.json``
    (created if missing; other sets are kept, this one replaced), with
    run-level ``entries`` (``config``, ``layer_weights``, ...) set anew.
    Returns the results.

    Example
    -------
    >>> folder = str(getfixture("tmp_path"))
    >>> sorted(add_test_set(folder, "eval", {"eer": 1.0}, layer_weights=[1.0]))
    ['layer_weights', 'test_sets']
    """
    results = read_results(folder, missing_ok=True)
    results.update(entries)
    results.setdefault("test_sets", {})[name] = metrics
    write_results(folder, results)
    return results


def scored_sets(folder):
    """Set names a run folder's ``results.json`` lists that have a score file."""
    names = [check_set_name(n, results_path(folder)) for n in read_results(folder).get("test_sets", {})]
    return [n for n in names if os.path.isfile(score_path(folder, n))]


def is_scored_run(folder, name=DEV_SET):
    """Whether ``folder`` holds ``scores/<name>.txt``."""
    return os.path.isfile(score_path(folder, name))


def depth_folders(run, name=DEV_SET):
    """The ``N<n>/`` subfolders of a multi-depth run that scored ``name``,
    shallowest first."""
    if not os.path.isdir(run):
        return []
    found = []
    for entry in os.listdir(run):
        if entry.startswith("N") and entry[1:].isdigit() and is_scored_run(os.path.join(run, entry), name):
            found.append((int(entry[1:]), os.path.join(run, entry)))
    return [path for _, path in sorted(found)]


def rank_checkpoint(meta, selection_metric):
    """Rank of a checkpoint from its meta (higher is better): best dev
    ``selection_metric``, ties broken by the other of dev EER and dev loss
    (small dev sets tie on EER).

    Example
    -------
    >>> a, b = {"EER": 1.0, "loss": 0.3}, {"EER": 1.0, "loss": 0.2}
    >>> max([a, b], key=lambda m: rank_checkpoint(m, "EER")) is b
    True
    """
    if selection_metric not in SELECTION_METRICS:
        raise ValueError(f"selection_metric must be one of {SELECTION_METRICS}, got {selection_metric!r}")
    secondary = "loss" if selection_metric == "EER" else "EER"

    def value(key):  # a NaN would compare as neither better nor worse: rank it last
        found = meta.get(key, float("inf"))
        return found if math.isfinite(found) else float("inf")

    return (-value(selection_metric), -value(secondary))


def incomplete_checkpoint(checkpoint, recoverables):
    """Why a checkpoint cannot be loaded (a missing or truncated parameter
    file), or None if it is complete.

    SpeechBrain writes a checkpoint's meta file first and its parameter files
    one after the other, each in place: a run killed while saving leaves a
    checkpoint that looks valid but fails to load, and recovery would pick
    it as the latest. ``torch.save`` files are zip archives, whose directory
    comes last, so a truncated one is not a valid zip.
    """
    for name in recoverables:
        path = os.path.join(checkpoint.path, name + PARAMFILE_EXT)
        if not os.path.isfile(path):
            return f"{name}{PARAMFILE_EXT} is missing"
        with open(path, "rb") as fin:
            is_zip_format = fin.read(2) == b"PK"
        if is_zip_format and not zipfile.is_zipfile(path):
            return f"{name}{PARAMFILE_EXT} is truncated"
    return None


def discard_incomplete_checkpoints(checkpointer):
    """Renames checkpoints a crash left half-written (``incomplete-CKPT...``,
    kept for inspection, ignored by SpeechBrain), so that a rerun resumes
    from the last complete one. Runs on the main process only."""

    def discard():
        for checkpoint in checkpointer.list_checkpoints():
            reason = incomplete_checkpoint(checkpoint, checkpointer.recoverables)
            if reason is not None:
                target = checkpoint.path.with_name("incomplete-" + checkpoint.path.name)
                os.replace(checkpoint.path, target)
                logger.warning("checkpoint %s is incomplete (%s, saving was interrupted): "
                               "moved to %s; resuming from the last complete one",
                               checkpoint.path, reason, target)

    run_on_main(discard)
