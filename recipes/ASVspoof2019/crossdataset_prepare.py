"""Eval-only data preparation for cross-dataset tests of LA19-trained models.

ASVspoof 2021 LA and DF (``data_folder`` holds the audio and the extracted
keys archive)::

    ASVspoof2021_{LA,DF}_eval/flac/{LA,DF}_E_*.flac
    keys/{LA,DF}/CM/trial_metadata.txt
    keys/LA/ASV/trial_metadata.txt, keys/LA/ASV/ASVTorch_Kaldi/score.txt  (LA t-DCF, optional)

CM key lines: ``SPEAKER UTT_ID CODEC TRANSMISSION ATTACK KEY TRIM SUBSET ...``
(8 columns for LA, 13 for DF). Only the ``eval`` subset is scored.

In-the-Wild (``data_folder`` is ``release_in_the_wild`` or its parent)::

    release_in_the_wild/{0..31778}.wav, release_in_the_wild/meta.csv (file,speaker,label)
"""

import csv
import logging
import os

import numpy as np

from lobes.dataio.prepare import (
    ProtocolError,
    Trial,
    checked_trials,
    find_dataset_root,
    log_counts,
    read_protocol,
    save_options,
    skip,
    write_manifest,
)
from lobes.utils.fingerprints import note_input
from lobes.utils.safe_paths import safe_join

logger = logging.getLogger(__name__)

KEY_COLUMNS = {"LA": 8, "DF": 13}


def asvspoof2021_key_parser(track):
    """Parser of ASVspoof 2021 CM key lines; the subset goes to ``extra``.

    Example
    -------
    >>> trial = asvspoof2021_key_parser("LA")(
    ...     "LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval".split())
    >>> trial.attack, trial.label, trial.extra
    ('A07', 'spoof', {'subset': 'eval'})
    """
    n_columns = KEY_COLUMNS[track]

    def parse(fields):
        if len(fields) != n_columns:
            raise ValueError(
                f"expected {n_columns} columns of an ASVspoof 2021 {track} key, got {len(fields)}"
            )
        speaker, utt_id, attack, key, subset = fields[0], fields[1], fields[4], fields[5], fields[7]
        if key not in ("bonafide", "spoof"):
            raise ValueError(f"key {key!r} is neither 'bonafide' nor 'spoof'")
        attack = attack if key == "spoof" else "-"
        return Trial(utt_id=utt_id, label=key, attack=attack, speaker=speaker, extra={"subset": subset})

    return parse


def _prepare(name, save_folder, options, load_trials, skip_missing):
    """Shared tail: skip() check, audio checks, manifest, summary."""
    manifest = os.path.join(save_folder, f"{name}.csv")
    options_file = os.path.join(save_folder, f"{name}_options.json")
    if skip([manifest], options_file, options):
        logger.info("%s manifest already prepared in %s", name, save_folder)
        return manifest
    os.makedirs(save_folder, exist_ok=True)
    trials, wav_path = load_trials()
    trials = checked_trials(trials, wav_path, name, save_folder, skip_missing)
    write_manifest(manifest, trials)
    log_counts(name, trials)
    save_options(options_file, options)
    return manifest


def prepare_asvspoof2021(data_folder, save_folder, track="LA", skip_missing=False):
    """Writes ``asv21_<track>.csv`` for the ``eval`` subset of ASVspoof 2021 LA or DF.

    Returns the manifest path.
    """
    if track not in KEY_COLUMNS:
        raise ValueError(f"track must be 'LA' or 'DF', got {track!r}")
    key_file = os.path.join(data_folder, "keys", track, "CM", "trial_metadata.txt")
    audio_folder = os.path.join(data_folder, f"ASVspoof2021_{track}_eval", "flac")
    for path in (key_file, audio_folder):
        if not os.path.exists(path):
            raise FileNotFoundError(f"ASVspoof 2021 {track}: {path} not found")

    def load_trials():
        trials = read_protocol(key_file, asvspoof2021_key_parser(track))
        trials = [t for t in trials if t.extra.pop("subset") == "eval"]
        return trials, lambda t: safe_join(audio_folder, f"{t.utt_id}.flac", t.origin)

    options = {"data_folder": os.path.abspath(data_folder), "track": track, "skip_missing": skip_missing}
    return _prepare(f"asv21_{track.lower()}", save_folder, options, load_trials, skip_missing)


def in_the_wild_root(data_folder):
    """``data_folder/release_in_the_wild`` or ``data_folder`` itself."""
    return find_dataset_root(data_folder, "release_in_the_wild", "meta.csv", "In-the-Wild")


def read_in_the_wild_meta(path):
    """Trials from ``meta.csv`` (``file,speaker,label``; labels bona-fide/spoof)."""
    labels = {"bona-fide": "bonafide", "spoof": "spoof"}
    trials = []
    note_input(path)  # an edit makes the next run prepare again
    with open(path, encoding="utf-8", newline="") as fin:
        reader = csv.reader(fin)
        header = next(reader, None)
        if header != ["file", "speaker", "label"]:
            raise ProtocolError(f"{path}:1: expected header 'file,speaker,label', got {header}")
        for line_no, row in enumerate(reader, 2):
            if not row:
                continue
            if len(row) != 3 or row[2] not in labels:
                raise ProtocolError(f"{path}:{line_no}: expected 'FILE,SPEAKER,bona-fide|spoof', got {row}")
            utt_id = os.path.splitext(row[0])[0]
            label = labels[row[2]]
            trials.append(
                Trial(utt_id=utt_id, label=label, attack="-" if label == "bonafide" else "ITW",
                      speaker=row[1].replace(",", " ").replace(" ", "_"), extra={"file": row[0]})
            )
    return trials


def prepare_in_the_wild(data_folder, save_folder, skip_missing=False):
    """Writes ``itw.csv`` for the In-the-Wild dataset; returns its path."""
    root = in_the_wild_root(data_folder)

    def load_trials():
        trials = read_in_the_wild_meta(os.path.join(root, "meta.csv"))
        return trials, lambda t: safe_join(root, t.extra["file"], t.origin)

    options = {"data_folder": os.path.abspath(root), "skip_missing": skip_missing}
    return _prepare("itw", save_folder, options, load_trials, skip_missing)


def read_asv21_scores(data_folder, subset="eval"):
    """ASV scores of ASVspoof 2021 LA for the 2021 t-DCF, or ``None`` if absent.

    Key lines give the ASV class in column 6 and the subset in column 8; the
    score file's third column holds the score of the same row.
    """
    key_file = os.path.join(data_folder, "keys", "LA", "ASV", "trial_metadata.txt")
    score_file = os.path.join(data_folder, "keys", "LA", "ASV", "ASVTorch_Kaldi", "score.txt")
    if not (os.path.isfile(key_file) and os.path.isfile(score_file)):
        return None
    with open(key_file, encoding="utf-8") as fin:
        keys = [line.split() for line in fin if line.strip()]
    with open(score_file, encoding="utf-8") as fin:
        scores = [line.split() for line in fin if line.strip()]
    if len(keys) != len(scores):
        raise ValueError(f"{key_file} has {len(keys)} lines but {score_file} has {len(scores)}")
    groups = {"target": [], "nontarget": [], "spoof": []}
    for line_no, (key, score) in enumerate(zip(keys, scores), 1):
        if len(key) < 8 or key[5] not in groups or len(score) < 3:
            raise ValueError(f"{key_file}:{line_no} / {score_file}:{line_no}: unexpected format")
        if key[7] == subset:
            groups[key[5]].append(float(score[2]))
    return {name: np.asarray(values) for name, values in groups.items()}
