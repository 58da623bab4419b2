"""Data preparation for ASVspoof 2019 LA.

Expected layout under ``data_folder`` (the folder holding ``LA/``, or ``LA/``
itself)::

    LA/ASVspoof2019_LA_{train,dev,eval}/flac/LA_{T,D,E}_*.flac
    LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt
    LA/ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.{dev,eval}.gi.trl.scores.txt  (optional)

Every protocol line is parsed and every listed file is checked (exists,
readable, 16 kHz) before any training. Writes ``{train,dev,eval}.csv``.
"""

import logging
import os

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
from lobes.utils.safe_paths import safe_join

logger = logging.getLogger(__name__)

SPLITS = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}


def la_root(data_folder):
    """The ``LA`` folder: ``data_folder/LA`` or ``data_folder`` itself."""
    return find_dataset_root(data_folder, "LA", "ASVspoof2019_LA_cm_protocols", "ASVspoof 2019 LA")


def protocol_path(root, split):
    """Path of the CM protocol of ``split``."""
    return os.path.join(
        root, "ASVspoof2019_LA_cm_protocols", f"ASVspoof2019.LA.cm.{SPLITS[split]}.txt"
    )


def asv_score_path(data_folder, split):
    """Path of the organisers' ASV scores for ``split`` (dev or eval)."""
    return os.path.join(
        la_root(data_folder),
        "ASVspoof2019_LA_asv_scores",
        f"ASVspoof2019.LA.asv.{split}.gi.trl.scores.txt",
    )


def prepare_asvspoof2019(data_folder, save_folder, splits=("train", "dev", "eval"), skip_missing=False):
    """Validates ASVspoof 2019 LA and writes one manifest CSV per split.

    Arguments
    ---------
    data_folder : str
        Folder holding ``LA/`` (or the ``LA`` folder itself).
    save_folder : str
        Where ``<split>.csv`` are written.
    splits : sequence of str
        Any of ``train``, ``dev``, ``eval``.
    skip_missing : bool
        List and skip protocol entries whose audio is missing instead of
        failing. Unreadable or wrongly sampled files always fail.

    Example
    -------
    >>> prepare_asvspoof2019("/no/such/folder", "out")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    FileNotFoundError: no ASVspoof 2019 LA data in '/no/such/folder': expected
    /no/such/folder/LA/ASVspoof2019_LA_cm_protocols
    """
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; choose from {list(SPLITS)}")
    root = la_root(data_folder)
    outputs = [os.path.join(save_folder, f"{split}.csv") for split in splits]
    options_file = os.path.join(save_folder, "prepare_options.json")
    options = {
        "data_folder": os.path.abspath(root),
        "splits": list(splits),
        "skip_missing": skip_missing,
    }
    if skip(outputs, options_file, options):
        logger.info("ASVspoof 2019 manifests already prepared in %s", save_folder)
        return
    os.makedirs(save_folder, exist_ok=True)

    for split, output in zip(splits, outputs):
        audio_folder = os.path.join(root, f"ASVspoof2019_LA_{split}", "flac")
        if not os.path.isdir(audio_folder):
            raise FileNotFoundError(f"audio folder not found: {audio_folder}")
        trials = read_protocol(protocol_path(root, split), parse_asvspoof_line)
        trials = checked_trials(
            trials,
            lambda t: safe_join(audio_folder, f"{t.utt_id}.flac", t.origin),
            split,
            save_folder,
            skip_missing,
        )
        write_manifest(output, trials)
        log_counts(split, trials)
    save_options(options_file, options)
