"""Data preparation for ASVspoof 5, Track 1 (stand-alone countermeasures).

Expected layout under ``data_folder`` (the protocols may also sit in an
``ASVspoof5_protocols/`` folder inside it)::

    flac_T/T_##########.flac        ASVspoof5.train.tsv
    flac_D/D_##########.flac        ASVspoof5.dev.track_1.tsv
    flac_E_eval/E_##########.flac   ASVspoof5.eval.track_1.tsv      (optional)

The ``.tsv`` protocols are space separated, without a header, ten columns::

    SPEAKER FILE GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP
    T_4850 T_0000000000 F - - - AC3 A05 spoof -

Copies from the challenge phase have six-column ``ASVspoof5.{train,dev,eval}.metadata.txt``
files instead (``T_4850 T_0000000000 F - A05 spoof``); either form is read,
the ``.tsv`` one when both exist. Every line is checked and every listed file
is checked (exists, readable, 16 kHz) before any training; errors name the
file and line. Writes ``{train,dev,eval}.csv`` with the gender, codec, codec
quality and attack tag as extra columns; eval only when its protocol exists.
"""

import logging
import os
import re

from lobes.dataio.prepare import (
    Trial,
    checked_trials,
    count_by,
    log_counts,
    read_protocol,
    save_options,
    skip,
    write_manifest,
)
from lobes.utils.safe_paths import safe_join

logger = logging.getLogger(__name__)

SPLITS = {"train": ("T", "flac_T"), "dev": ("D", "flac_D"), "eval": ("E", "flac_E_eval")}
PROTOCOLS = {  # split -> (10-column name, 6-column name), preferred first
    "train": ("ASVspoof5.train.tsv", "ASVspoof5.train.metadata.txt"),
    "dev": ("ASVspoof5.dev.track_1.tsv", "ASVspoof5.dev.metadata.txt"),
    "eval": ("ASVspoof5.eval.track_1.tsv", "ASVspoof5.eval.metadata.txt"),
}
PROTOCOL_FOLDERS = ("", "ASVspoof5_protocols")
OPTIONAL_SPLITS = ("eval",)
EXTRA_FIELDS = ["gender", "codec", "codec_q", "attack_tag"]
OPTIONS_FILE = "prepare_options.json"

_ATTACK = re.compile(r"A\d\d")
_CODEC = re.compile(r"C\d\d")


COLUMNS = {
    10: "SPEAKER FILE GENDER CODEC CODEC_Q CODEC_SEED ATTACK_TAG ATTACK_LABEL KEY TMP",
    6: "SPEAKER FILE GENDER - ATTACK KEY",
}


def protocol_columns(path):
    """10 for a ``.tsv`` protocol, 6 for a challenge-phase ``metadata.txt``."""
    return 10 if path.endswith(".tsv") else 6


def line_parser(split, n_columns=10):
    """``fields -> Trial`` for the lines of a ``split`` protocol of
    ``n_columns`` columns (10: ``.tsv``; 6: ``metadata.txt``).

    Example
    -------
    >>> parse = line_parser("train")
    >>> t = parse("T_4850 T_0000000000 F - - - AC3 A05 spoof -".split())
    >>> t.utt_id, t.label, t.attack, t.speaker, t.extra
    ('T_0000000000', 'spoof', 'A05', 'T_4850', {'gender': 'F', 'codec': '-', 'codec_q': '-', 'attack_tag': 'AC3'})
    >>> line_parser("dev", 6)("D_0461 D_0000000190 M - - bonafide".split()).attack
    '-'
    >>> parse("T_4850 D_0000000000 F - - - AC3 A05 spoof -".split())
    Traceback (most recent call last):
    ...
    ValueError: file name 'D_0000000000' is not a train file (T_##########)
    """
    letter = SPLITS[split][0]
    file_pattern = re.compile(rf"{letter}_\d{{10}}")

    if n_columns not in COLUMNS:
        raise ValueError(f"an ASVspoof 5 protocol has 10 or 6 columns, not {n_columns}")

    def parse(fields):
        if len(fields) != n_columns:
            raise ValueError(f"expected {n_columns} columns '{COLUMNS[n_columns]}', got {len(fields)}")
        if n_columns == 10:
            speaker, utt_id, gender, codec, codec_q, _, tag, attack, key, _ = fields
        else:
            speaker, utt_id, gender, codec, attack, key = fields
            codec_q, tag = "-", "-"
        if not file_pattern.fullmatch(utt_id):
            raise ValueError(f"file name {utt_id!r} is not a {split} file ({letter}_##########)")
        if gender not in ("F", "M"):
            raise ValueError(f"gender {gender!r} is neither 'F' nor 'M'")
        if codec != "-" and not _CODEC.fullmatch(codec):
            raise ValueError(f"codec {codec!r} is neither '-' nor C01..C11")
        if key == "bonafide":
            if attack not in ("bonafide", "-"):
                raise ValueError(f"bona fide trial with attack {attack!r}")
            attack = "-"  # the project's convention for bona fide trials
        elif key == "spoof":
            if not _ATTACK.fullmatch(attack):
                raise ValueError(f"spoof trial with attack {attack!r}, expected A01..A32")
        else:
            raise ValueError(f"key {key!r} is neither 'bonafide' nor 'spoof'")
        return Trial(
            utt_id=utt_id,
            label=key,
            attack=attack,
            speaker=speaker,
            extra={"gender": gender, "codec": codec, "codec_q": codec_q, "attack_tag": tag},
        )

    return parse


def find_protocol(data_folder, split):
    """Path of the protocol of ``split`` (10-column ``.tsv`` preferred), or None.

    Example
    -------
    >>> find_protocol("/no/such/folder", "train") is None
    True
    """
    for name in PROTOCOLS[split]:
        for sub in PROTOCOL_FOLDERS:
            path = os.path.join(data_folder, sub, name)
            if os.path.isfile(path):
                return path
    return None


def class_weights(n_spoof, n_bonafide):
    """Cross-entropy weights ``[spoof, bonafide]`` inversely proportional to
    the class counts, summing to 1 (how the recipe's YAML values were set).

    Example
    -------
    >>> [round(w, 3) for w in class_weights(163560, 18797)]  # ASVspoof 5 train
    [0.103, 0.897]
    """
    total = n_spoof + n_bonafide
    return [n_bonafide / total, n_spoof / total]


def prepare_asvspoof5(data_folder, save_folder, splits=("train", "dev", "eval"), skip_missing=False):
    """Validates ASVspoof 5 Track 1 and writes one manifest CSV per split.

    Arguments
    ---------
    data_folder : str
        Folder holding ``flac_T/``, ``flac_D/``, ``flac_E_eval/`` and the protocols.
    save_folder : str
        Where ``<split>.csv`` are written.
    splits : sequence of str
        Any of ``train``, ``dev``, ``eval``; ``eval`` is skipped (logged)
        when its protocol is absent.
    skip_missing : bool
        List and skip protocol entries whose audio is missing instead of
        failing. Unreadable or wrongly sampled files always fail.

    Example
    -------
    >>> prepare_asvspoof5("/no/such/folder", "out")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    FileNotFoundError: no ASVspoof 5 train protocol in '/no/such/folder': expected ASVspoof5.train.tsv or
    ASVspoof5.train.metadata.txt (there or in ASVspoof5_protocols/)
    """
    unknown = set(splits) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown splits {sorted(unknown)}; choose from {list(SPLITS)}")
    protocols = {}
    for split in splits:
        path = find_protocol(data_folder, split)
        if path is None and split in OPTIONAL_SPLITS:
            logger.info("ASVspoof 5: no %s protocol in %s; %s not prepared", split, data_folder, split)
            continue
        if path is None:
            raise FileNotFoundError(
                f"no ASVspoof 5 {split} protocol in {data_folder!r}: expected "
                f"{' or '.join(PROTOCOLS[split])} (there or in {PROTOCOL_FOLDERS[1]}/)"
            )
        protocols[split] = path
    outputs = [os.path.join(save_folder, f"{split}.csv") for split in protocols]
    options_file = os.path.join(save_folder, OPTIONS_FILE)
    options = {
        "data_folder": os.path.abspath(data_folder),
        "protocols": {split: os.path.abspath(path) for split, path in protocols.items()},
        "splits": list(protocols),
        "skip_missing": skip_missing,
    }
    if skip(outputs, options_file, options):
        logger.info("ASVspoof 5 manifests already prepared in %s", save_folder)
        return
    os.makedirs(save_folder, exist_ok=True)
    for split, protocol in protocols.items():
        audio_folder = os.path.join(data_folder, SPLITS[split][1])
        if not os.path.isdir(audio_folder):
            raise FileNotFoundError(f"audio folder not found: {audio_folder} (listed by {protocol})")
        trials = read_protocol(protocol, line_parser(split, protocol_columns(protocol)))
        trials = checked_trials(
            trials,
            lambda t, folder=audio_folder: safe_join(folder, f"{t.utt_id}.flac", t.origin),
            split,
            save_folder,
            skip_missing,
        )
        write_manifest(os.path.join(save_folder, f"{split}.csv"), trials, EXTRA_FIELDS)
        counts = {label: n for (label,), n in count_by(trials, "label").items()}
        detail = ""
        if split == "train":
            weights = class_weights(counts.get("spoof", 0), counts.get("bonafide", 0))
            detail = f"; class weights from these counts [spoof, bonafide] = [{weights[0]:.3f}, {weights[1]:.3f}]"
        log_counts(split, trials, detail)
    save_options(options_file, options)
