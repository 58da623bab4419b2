"""Data preparation for PartialSpoof (utterance detection and localisation).

Expected layout under ``data_folder`` (the folder holding ``database/``, or
``database/`` itself)::

    database/{train,dev,eval}/con_wav/{LA_*,CON_*}.wav
    database/protocols/PartialSpoof_LA_cm_protocols/PartialSpoof.LA.cm.{train,dev,eval}.trl.txt
    database/segment_labels/{split}_seglab_{0.01,0.02,0.04,0.08,0.16,0.32,0.64}.npy

Each segment label file is a dict ``utt_id -> array of '0'/'1' strings``,
one per segment of that many seconds, saved with ``np.save``. Which symbol
means bona fide is checked, not assumed: every segment of every bona fide
``LA_*`` utterance must carry ``bonafide_symbol`` (official tools: ``'1'``),
else preparation stops and names the file and the protocol line.

Writes ``{train,dev,eval}.csv`` with the shared columns plus one
``seglab_<ms>`` column per label resolution of 20 ms or more: a string with
one character a segment, normalised to ``1`` = bona fide, ``0`` = spoof
(the convention of ``lobes.dataio.dataset.LABELS``), whatever the dataset's symbols.
The 10 ms labels are checked but not stored: they are finer than the 20 ms
SSL frames.
"""

import logging
import os

import numpy as np

from lobes.dataio.prepare import (
    checked_trials,
    find_dataset_root,
    log_counts,
    parse_asvspoof_line,
    read_protocol,
    save_options,
    skip,
    write_manifest,
)
from lobes.dataio.safe_npy import UnsafeDataError, load_npy
from lobes.evaluation.segments import label_column
from lobes.utils.fingerprints import note_input
from lobes.utils.safe_paths import safe_join

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "eval")
RESOLUTIONS = ("0.01", "0.02", "0.04", "0.08", "0.16", "0.32", "0.64")
# Finest resolution stored in the manifests: the SSL frame rate.
MIN_STORED_RESOLUTION = 0.02
SYMBOLS = ("0", "1")


class SegmentLabelError(ValueError):
    """Segment labels that are missing, malformed or of the wrong polarity."""


def database_root(data_folder):
    """The ``database`` folder: ``data_folder/database`` or ``data_folder`` itself."""
    return find_dataset_root(data_folder, "database", "protocols", "PartialSpoof")


def protocol_path(root, split):
    """Path of the CM protocol of ``split`` (``.trl`` for every split)."""
    return os.path.join(
        root, "protocols", "PartialSpoof_LA_cm_protocols", f"PartialSpoof.LA.cm.{split}.trl.txt"
    )


def label_path(root, split, resolution):
    """Path of the segment labels of ``split`` at ``resolution`` (a string)."""
    return os.path.join(root, "segment_labels", f"{split}_seglab_{resolution}.npy")


def load_segment_labels(path):
    """Loads one label file: a pickled dict saved with ``np.save``, read
    with ``lobes.dataio.safe_npy.load_npy`` (numpy arrays only: a label file
    cannot run code).

    Example
    -------
    >>> path = getfixture("tmp_path") / "dev_seglab_0.64.npy"
    >>> np.save(path, {"LA_D_1": np.array(["1", "1"])})
    >>> load_segment_labels(path)["LA_D_1"].tolist()
    ['1', '1']
    """
    note_input(path)  # an edit makes the next run prepare again
    try:
        loaded = load_npy(path)
        labels = loaded.item() if loaded.dtype == object and loaded.ndim == 0 else None
    except UnsafeDataError as err:
        raise SegmentLabelError(str(err)) from None
    except Exception as err:  # numpy raises several types for bad files
        raise SegmentLabelError(f"{path}: cannot read segment labels: {err}") from err
    if not isinstance(labels, dict):
        raise SegmentLabelError(f"{path}: expected a dict utt_id -> label array saved with np.save")
    return labels


def check_segments(path, trial, segments, bonafide_symbol, line):
    """Validates one utterance's segments; returns them normalised (1 = bona fide).

    Raises ``SegmentLabelError`` naming the label file and the protocol line
    when a symbol is not ``'0'``/``'1'`` or a bona fide ``LA_*`` utterance
    has a segment without the bona fide symbol (wrong polarity).
    """
    symbols = [str(s) for s in np.asarray(segments).ravel().tolist()]
    if not symbols:
        raise SegmentLabelError(f"{path}: utterance {trial.utt_id} ({line}) has no segments")
    unknown = sorted(set(symbols) - set(SYMBOLS))
    if unknown:
        raise SegmentLabelError(
            f"{path}: utterance {trial.utt_id} ({line}) has segment symbols {unknown}; "
            f"expected '0'/'1'"
        )
    if trial.label == "bonafide" and trial.utt_id.startswith("LA_"):
        wrong = [i for i, s in enumerate(symbols) if s != bonafide_symbol]
        if wrong:
            raise SegmentLabelError(
                f"{path}: utterance {trial.utt_id} is bona fide ({line}) but "
                f"{len(wrong)} of its {len(symbols)} segments (first: {wrong[0]}) do not "
                f"carry the bona fide symbol {bonafide_symbol!r}: the label polarity is not "
                f"what bonafide_symbol says, or the file is corrupt"
            )
    text = "".join(symbols)
    if bonafide_symbol == "0":
        text = text.translate(str.maketrans("01", "10"))
    return text


def attach_segment_labels(root, split, trials, bonafide_symbol):
    """Reads every resolution present for ``split`` and checks it.

    Adds a ``seglab_<ms>`` entry to each trial's ``extra`` for resolutions of
    20 ms or more. Returns the list of resolutions found (strings).
    """
    found = []
    for resolution in RESOLUTIONS:
        path = label_path(root, split, resolution)
        if not os.path.isfile(path):
            continue
        found.append(resolution)
        labels = load_segment_labels(path)
        store = float(resolution) >= MIN_STORED_RESOLUTION
        n_spoof_segments = n_off_length = 0
        for trial in trials:
            if trial.utt_id not in labels:
                raise SegmentLabelError(
                    f"{path}: no segment labels for {trial.utt_id} ({trial.origin})"
                )
            text = check_segments(path, trial, labels[trial.utt_id], bonafide_symbol, trial.origin)
            n_spoof_segments += text.count("0")
            # Label files round durations their own way; more than two
            # segments off means the label and the audio do not match.
            if abs(len(text) - trial.duration / float(resolution)) > 2:
                n_off_length += 1
            if store:
                trial.extra[label_column(resolution)] = text
        if n_off_length:
            logger.warning(
                "%s: %d utterances have a segment count more than 2 away from "
                "duration / %s s", path, n_off_length, resolution,
            )
        logger.info(
            "%s: %d segments labelled spoof at %s s", split, n_spoof_segments, resolution
        )
    if not found:
        logger.warning(
            "%s: no segment labels in %s; utterance-level detection only",
            split, os.path.join(root, "segment_labels"),
        )
    return found


def prepare_partialspoof(
    data_folder, save_folder, splits=SPLITS, bonafide_symbol="1", skip_missing=False
):
    """Validates PartialSpoof and writes one manifest CSV per split.

    Arguments
    ---------
    data_folder : str
        Folder holding ``database/`` (or ``database/`` itself).
    save_folder : str
        Where ``<split>.csv`` are written.
    splits : sequence of str
        Any of ``train``, ``dev``, ``eval``.
    bonafide_symbol : str
        Label symbol of bona fide segments (``'1'`` in the official tools);
        checked against every bona fide ``LA_*`` utterance.
    skip_missing : bool
        List and skip protocol entries whose audio is missing instead of
        failing.

    Returns
    -------
    dict
        Split -> segment label resolutions found (strings, e.g. ``"0.02"``).

    Example
    -------
    >>> prepare_partialspoof("/no/such/folder", "out")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no PartialSpoof data in '/no/such/folder': expected /no/such/folder/database/protocols
    """
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; choose from {list(SPLITS)}")
    if bonafide_symbol not in SYMBOLS:
        raise ValueError(f"bonafide_symbol must be '0' or '1', got {bonafide_symbol!r}")
    root = database_root(data_folder)
    outputs = [os.path.join(save_folder, f"{split}.csv") for split in splits]
    options_file = os.path.join(save_folder, "prepare_options.json")
    options = {
        "data_folder": os.path.abspath(root),
        "splits": list(splits),
        "bonafide_symbol": bonafide_symbol,
        "skip_missing": skip_missing,
        "label_files": sorted(
            os.path.basename(label_path(root, split, r))
            for split in splits
            for r in RESOLUTIONS
            if os.path.isfile(label_path(root, split, r))
        ),
    }
    if skip(outputs, options_file, options):
        logger.info("PartialSpoof manifests already prepared in %s", save_folder)
        return {split: _resolutions_in(options["label_files"], split) for split in splits}
    os.makedirs(save_folder, exist_ok=True)

    found = {}
    for split, output in zip(splits, outputs):
        found[split] = _prepare_split(root, split, output, save_folder, bonafide_symbol, skip_missing)
    save_options(options_file, options)
    return found


def _resolutions_in(label_files, split):
    prefix = f"{split}_seglab_"
    return [name[len(prefix) : -len(".npy")] for name in label_files if name.startswith(prefix)]


def _prepare_split(root, split, output, save_folder, bonafide_symbol, skip_missing):
    audio_folder = os.path.join(root, split, "con_wav")
    if not os.path.isdir(audio_folder):
        raise FileNotFoundError(f"audio folder not found: {audio_folder}")
    trials = read_protocol(protocol_path(root, split), parse_asvspoof_line)
    trials = checked_trials(
        trials, lambda t: safe_join(audio_folder, f"{t.utt_id}.wav", t.origin), split, save_folder, skip_missing
    )
    found = attach_segment_labels(root, split, trials, bonafide_symbol)
    columns = [label_column(r) for r in found if float(r) >= MIN_STORED_RESOLUTION]
    write_manifest(output, trials, extra_fields=columns)
    log_counts(split, trials, f", segment labels at {', '.join(found) or 'no resolution'}")
    return found
