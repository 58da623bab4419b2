"""Data preparation for CtrSVDD (singing voice deepfakes).

Expected layout under ``data_folder``::

    train_set/*.flac   train.txt
    dev_set/*.flac     dev.txt
    test_set/*.flac    <eval key file> (``test.txt`` unless told otherwise)

Protocol line: ``SOURCE SINGER UTT_ID - ATTACK KEY``, KEY ``bonafide`` or
``deepfake`` (stored as ``spoof``), e.g.
``jvsmusic CtrSVDD_0097 CtrSVDD_0097_D_0010993 - A06 deepfake``.

The public archives lack the bona fide audio of licence-restricted source
corpora, which users rebuild with the organisers' scripts. Protocol entries
without audio are therefore skipped, listed in ``missing_audio.txt`` and
reported in one summary counted per split and source corpus. Preparation
fails only when a split, or a class within a split, is left empty. Writes
``{train,dev,eval}.csv`` with the source corpus as an extra column.
"""

import logging
import os

from lobes.dataio.prepare import (
    attach_audio,
    count_by,
    parse_asvspoof_line,
    read_protocol,
    save_options,
    skip,
    write_manifest,
)
from lobes.utils.files import atomic_write_text
from lobes.utils.safe_paths import safe_join

logger = logging.getLogger(__name__)

AUDIO_FOLDERS = {"train": "train_set", "dev": "dev_set", "eval": "test_set"}
PROTOCOLS = {"train": "train.txt", "dev": "dev.txt"}
KEYS = {"bonafide": "bonafide", "deepfake": "spoof"}
EXTRA_FIELDS = ["source"]
MISSING_LISTING = "missing_audio.txt"


def parse_ctrsvdd_line(fields):
    """``SOURCE SINGER UTT_ID - ATTACK KEY`` -> ``Trial`` with ``extra["source"]``.

    Example
    -------
    >>> trial = parse_ctrsvdd_line("jvsmusic CtrSVDD_0097 CtrSVDD_0097_D_0010993 - A06 deepfake".split())
    >>> trial.utt_id, trial.label, trial.attack, trial.speaker, trial.extra
    ('CtrSVDD_0097_D_0010993', 'spoof', 'A06', 'CtrSVDD_0097', {'source': 'jvsmusic'})
    >>> parse_ctrsvdd_line("m4singer CtrSVDD_0110 CtrSVDD_0110_D_0015416 - - spoof".split())
    Traceback (most recent call last):
    ...
    ValueError: key 'spoof' is neither 'bonafide' nor 'deepfake'
    """
    if len(fields) != 6:
        raise ValueError(
            f"expected 6 columns 'SOURCE SINGER UTT_ID - ATTACK KEY', got {len(fields)}"
        )
    source, singer, utt_id, dash, attack, key = fields
    if key not in KEYS:
        raise ValueError(f"key {key!r} is neither 'bonafide' nor 'deepfake'")
    # The remaining columns are the ASVspoof ones: reuse their checks.
    trial = parse_asvspoof_line([singer, utt_id, dash, attack, KEYS[key]])
    trial.extra = {"source": source}
    return trial


def protocol_paths(root, eval_key):
    """Split -> protocol path; ``eval_key`` is a name in ``root`` or a path."""
    paths = {split: os.path.join(root, name) for split, name in PROTOCOLS.items()}
    paths["eval"] = os.path.join(root, eval_key)  # an absolute eval_key wins
    return paths


def missing_summary(listed, missing, listing):
    """One readable summary of the skipped entries, per split and source.

    Arguments
    ---------
    listed, missing : dict
        Split -> list of Trial (all protocol entries / those without audio).
    listing : str
        Where the skipped ids are listed.

    Example
    -------
    >>> from lobes.dataio.prepare import Trial
    >>> a = Trial("a", "bonafide", "-", "s", extra={"source": "kising"})
    >>> b = Trial("b", "spoof", "A01", "s", extra={"source": "kising"})
    >>> print(missing_summary({"dev": [a, b]}, {"dev": [a]}, "missing_audio.txt"))
    CtrSVDD: 1 of 2 protocol entries have no audio and were skipped (listed in missing_audio.txt)
      dev: kising 1 of 2 (bona fide 1, spoof 0)
    """
    n_missing = sum(len(trials) for trials in missing.values())
    n_listed = sum(len(trials) for trials in listed.values())
    lines = [
        f"CtrSVDD: {n_missing} of {n_listed} protocol entries have no audio and were "
        f"skipped (listed in {listing})"
    ]
    for split, trials in listed.items():
        if not missing.get(split):
            lines.append(f"  {split}: none missing")
            continue
        totals = _count_sources(trials)
        absent = _count_sources(missing[split], by_label=True)
        cells = [
            f"{source} {sum(labels.values())} of {totals[source]} "
            f"(bona fide {labels.get('bonafide', 0)}, spoof {labels.get('spoof', 0)})"
            for source, labels in absent.items()
        ]
        lines.append(f"  {split}: " + ", ".join(cells))
    return "\n".join(lines)


def _count_sources(trials, by_label=False):
    """Source -> count, or source -> {label: count} with ``by_label``."""
    counts = {}
    for trial in trials:
        source = trial.extra["source"]
        if by_label:
            counts.setdefault(source, {}).setdefault(trial.label, 0)
            counts[source][trial.label] += 1
        else:
            counts[source] = counts.get(source, 0) + 1
    return dict(sorted(counts.items()))


def check_classes(split, kept, listed):
    """Fails when ``split`` has no trial of a class left after skipping.

    Example
    -------
    >>> from lobes.dataio.prepare import Trial
    >>> listed = [Trial("a", "bonafide", "-", "s"), Trial("b", "spoof", "A01", "s")]
    >>> check_classes("train", listed[1:], listed)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: CtrSVDD train: no bonafide trial has audio (1 listed in the protocol); complete the dataset first
    (see the recipe's README)
    """
    for label in ("bonafide", "spoof"):
        n_kept = sum(trial.label == label for trial in kept)
        if n_kept == 0:
            n_listed = sum(trial.label == label for trial in listed)
            raise ValueError(
                f"CtrSVDD {split}: no {label} trial has audio ({n_listed} listed in the protocol); "
                "complete the dataset first (see the recipe's README)"
            )


def prepare_ctrsvdd(
    data_folder, save_folder, eval_key="test.txt", splits=("train", "dev", "eval"), skip_missing=True
):
    """Validates CtrSVDD and writes one manifest CSV per split.

    Arguments
    ---------
    data_folder : str
        Folder holding ``train_set/``, ``dev_set/``, ``test_set/`` and the protocols.
    save_folder : str
        Where ``<split>.csv`` and ``missing_audio.txt`` are written.
    eval_key : str
        The eval key file: a name inside ``data_folder`` or a path.
    splits : sequence of str
        Any of ``train``, ``dev``, ``eval``.
    skip_missing : bool
        Skip and report protocol entries without audio (the normal case for
        the public release); False fails on the first one. Unreadable or
        wrongly sampled files always fail.

    Returns
    -------
    dict or None
        Split -> source -> number of skipped entries; None when the
        manifests were already prepared with the same options.

    Example
    -------
    >>> prepare_ctrsvdd("/no/such/folder", "out")
    Traceback (most recent call last):
    ...
    FileNotFoundError: audio folder not found: /no/such/folder/train_set
    """
    unknown = set(splits) - set(AUDIO_FOLDERS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; choose from {list(AUDIO_FOLDERS)}")
    protocols = protocol_paths(data_folder, eval_key)
    outputs = {split: os.path.join(save_folder, f"{split}.csv") for split in splits}
    options_file = os.path.join(save_folder, "prepare_options.json")
    options = {
        "data_folder": os.path.abspath(data_folder),
        "eval_key": os.path.abspath(protocols["eval"]),
        "splits": list(splits),
        "skip_missing": skip_missing,
    }
    if skip(list(outputs.values()), options_file, options):
        logger.info("CtrSVDD manifests already prepared in %s", save_folder)
        return None
    os.makedirs(save_folder, exist_ok=True)

    listed, kept, missing = {}, {}, {}
    for split in splits:
        audio_folder = os.path.join(data_folder, AUDIO_FOLDERS[split])
        if not os.path.isdir(audio_folder):
            raise FileNotFoundError(f"audio folder not found: {audio_folder}")
        listed[split] = read_protocol(protocols[split], parse_ctrsvdd_line)
        kept[split], missing[split] = attach_audio(
            list(listed[split]),
            lambda t, folder=audio_folder: safe_join(folder, f"{t.utt_id}.flac", t.origin),
            skip_missing=skip_missing,
            desc=f"checking {split} audio",
            cache_file=os.path.join(save_folder, f"{split}_integrity.json"),
        )
    report_missing(save_folder, listed, missing)
    for split in splits:
        check_classes(split, kept[split], listed[split])
    for split in splits:
        write_manifest(outputs[split], kept[split], extra_fields=EXTRA_FIELDS)
        counts = count_by(kept[split], "label")
        logger.info(
            "%s: %d trials (%s)", split, len(kept[split]),
            ", ".join(f"{label}={n}" for (label,), n in counts.items()),
        )
    save_options(options_file, options)
    return {split: _count_sources(trials) for split, trials in missing.items()}


def report_missing(save_folder, listed, missing):
    """Lists the skipped entries (``SPLIT SOURCE UTT_ID``) and logs one summary."""
    listing = os.path.join(save_folder, MISSING_LISTING)
    atomic_write_text(
        listing,
        "".join(
            f"{split} {trial.extra['source']} {trial.utt_id}\n"
            for split, trials in missing.items()
            for trial in trials
        ),
    )
    if any(missing.values()):
        logger.warning(missing_summary(listed, missing, listing))
    else:
        logger.info("CtrSVDD: every protocol entry has audio")
