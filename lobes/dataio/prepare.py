"""Helpers shared by the recipes' prepare scripts.

Protocol parsing with errors that name the file and line, audio checks done
once before training, manifest CSVs, and SpeechBrain's ``skip()`` convention
(a rerun with the same options and existing manifests does nothing).
"""

import csv
import json
import logging
import os
from dataclasses import dataclass, field

import soundfile as sf
from tqdm import tqdm

from lobes.dataio.audio_checks import scan_files
from lobes.dataio.dataset import SAMPLE_RATE
from lobes.utils.files import atomic_write_text, numbered_lines
from lobes.utils.fingerprints import changed_inputs, note_input, recorded_inputs, start_recording

logger = logging.getLogger(__name__)

# ``origin``: the protocol ``file:line`` of the trial (empty when it came from
# no protocol line), so that an error while training names the line to fix.
MANIFEST_FIELDS = ["ID", "duration", "wav", "label", "attack", "speaker", "origin"]


class ProtocolError(ValueError):
    """A malformed protocol line; the message names the file and line."""


class AudioError(ValueError):
    """A missing, unreadable or wrongly sampled audio file."""


@dataclass
class Trial:
    """One protocol entry. ``extra`` holds dataset-specific columns;
    ``origin`` is the ``file:line`` it was read from, for error messages."""

    utt_id: str
    label: str
    attack: str
    speaker: str
    wav: str = ""
    duration: float = 0.0
    extra: dict = field(default_factory=dict)
    origin: str = field(default="", compare=False, repr=False)


def find_dataset_root(data_folder, subfolder, marker, dataset):
    """``data_folder/subfolder`` or ``data_folder`` itself, whichever holds
    ``marker`` (a file or folder), so users may point at either level.

    Example
    -------
    >>> find_dataset_root("/no/such", "LA", "protocols", "ASVspoof 2019 LA")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no ASVspoof 2019 LA data in '/no/such': expected /no/such/LA/protocols
    """
    for candidate in (os.path.join(data_folder, subfolder), data_folder):
        if os.path.exists(os.path.join(candidate, marker)):
            return candidate
    raise FileNotFoundError(
        f"no {dataset} data in {data_folder!r}: expected "
        f"{os.path.join(data_folder, subfolder, marker)}"
    )


def read_protocol(path, parse_line):
    """Reads a protocol with ``parse_line(fields) -> Trial``.

    ``parse_line`` raises ``ValueError`` with a short reason for a bad line;
    it is re-raised as a ``ProtocolError`` naming file, line and content.
    Duplicate utterance ids are errors too.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"protocol file not found: {path}")
    note_input(path)  # an edit makes the next run prepare again (skip())
    trials, seen = [], {}
    for line_no, fields, line in numbered_lines(path, "protocol file"):
        try:
            trial = parse_line(fields)
        except ValueError as err:
            raise ProtocolError(f"{path}:{line_no}: {err}: {line.strip()!r}") from None
        if trial.utt_id in seen:
            raise ProtocolError(
                f"{path}:{line_no}: utterance {trial.utt_id} already listed on line "
                f"{seen[trial.utt_id]}"
            )
        seen[trial.utt_id] = line_no
        trial.origin = f"{path}:{line_no}"
        trials.append(trial)
    if not trials:
        raise ProtocolError(f"{path}: no trials")
    return trials


def parse_asvspoof_line(fields):
    """``SPEAKER UTT_ID - ATTACK KEY`` (ASVspoof 2019 LA, PartialSpoof, HABLA).

    Example
    -------
    >>> parse_asvspoof_line("LA_0039 LA_E_2834763 - A11 spoof".split())
    Trial(utt_id='LA_E_2834763', label='spoof', attack='A11', speaker='LA_0039', wav='', duration=0.0, extra={})
    """
    if len(fields) != 5:
        raise ValueError(f"expected 5 columns 'SPEAKER UTT_ID - ATTACK KEY', got {len(fields)}")
    speaker, utt_id, _, attack, key = fields
    if key not in ("bonafide", "spoof"):
        raise ValueError(f"key {key!r} is neither 'bonafide' nor 'spoof'")
    if key == "bonafide" and attack != "-":
        raise ValueError(f"bona fide trial with attack {attack!r}")
    if key == "spoof" and attack == "-":
        raise ValueError("spoof trial without an attack id")
    return Trial(utt_id=utt_id, label=key, attack=attack, speaker=speaker)


def audio_duration(path, sample_rate=SAMPLE_RATE):
    """Checks that ``path`` is a readable, non-empty file at ``sample_rate``.

    Reads the header only. Returns the duration in seconds.
    """
    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {path}")
    try:
        info = sf.info(path)
    except Exception as err:  # soundfile raises several types for bad files
        raise AudioError(f"unreadable audio file {path}: {err}") from err
    if info.samplerate != sample_rate:
        raise AudioError(f"{path} is sampled at {info.samplerate} Hz; expected {sample_rate} Hz")
    if info.frames == 0:
        raise AudioError(f"{path} holds no samples")
    return info.frames / info.samplerate


def attach_audio(trials, wav_path, skip_missing=False, desc="checking audio", cache_file=None):
    """Resolves and checks each trial's audio; fills ``wav`` and ``duration``.

    Headers are read here; then the end of every file is decoded, in
    parallel workers (``lobes.dataio.audio_checks.scan_files``), so that a
    truncated or corrupt file fails now, naming its protocol line, rather
    than after training. ``cache_file`` keeps those verdicts (by file size
    and modification time) for reruns.

    Arguments
    ---------
    trials : list of Trial
    wav_path : callable
        ``trial -> path``.
    skip_missing : bool
        Drop trials whose file does not exist (listed in the returned
        ``missing``) instead of failing. Unreadable or wrongly sampled files
        always fail.

    Returns
    -------
    kept : list of Trial
    missing : list of Trial
    """
    kept, missing = [], []
    for trial in tqdm(trials, desc=desc, unit="file", mininterval=2.0):
        path = wav_path(trial)
        if skip_missing and not os.path.isfile(path):
            missing.append(trial)
            continue
        trial.wav = path
        try:
            trial.duration = audio_duration(path)
        except AudioError as err:
            if not trial.origin:
                raise
            raise AudioError(f"{trial.origin}: {err}") from None
        kept.append(trial)
    refused = scan_files([t.wav for t in kept], "tail", cache_file=cache_file,
                         desc=desc.replace("checking", "decoding the end of"))
    for trial in kept:
        if trial.wav in refused:
            where = f"{trial.origin}: " if trial.origin else ""
            raise AudioError(f"{where}{trial.wav}: {refused[trial.wav]}")
    return kept, missing


def checked_trials(trials, wav_path, split, save_folder, skip_missing=False):
    """``attach_audio`` for one split, reporting what was skipped.

    Trials without audio (only with ``skip_missing``) are listed in
    ``<save_folder>/<split>_missing.txt`` and counted in one warning. A split
    left without any trial is an error. Returns the kept trials.
    """
    kept, missing = attach_audio(trials, wav_path, skip_missing, desc=f"checking {split} audio",
                                 cache_file=os.path.join(save_folder, f"{split}_integrity.json"))
    if missing:
        listing = os.path.join(save_folder, f"{split}_missing.txt")
        atomic_write_text(listing, "".join(f"{t.utt_id}\n" for t in missing))
        logger.warning(
            "%s: %d protocol entries have no audio and were skipped (listed in %s)",
            split, len(missing), listing,
        )
    if not kept:
        raise ValueError(f"{split}: no trial has audio")
    return kept


def log_counts(split, trials, detail=""):
    """Logs ``<split>: <n> trials (bonafide=.., spoof=..)`` plus ``detail``."""
    counts = ", ".join(f"{label}={n}" for (label,), n in count_by(trials, "label").items())
    logger.info("%s: %d trials (%s)%s", split, len(trials), counts, detail)


def write_manifest(path, trials, extra_fields=()):
    """Writes a SpeechBrain CSV manifest (atomically)."""
    fields = MANIFEST_FIELDS + list(extra_fields)
    lines = [",".join(fields)]
    for trial in trials:
        row = {
            "ID": trial.utt_id,
            "duration": f"{trial.duration:.3f}",
            "wav": trial.wav,
            "label": trial.label,
            "attack": trial.attack,
            "speaker": trial.speaker,
            "origin": trial.origin,
            **trial.extra,
        }
        values = [str(row[name]) for name in fields]
        for value in values:
            if "," in value or "\n" in value:
                raise ValueError(f"{path}: value {value!r} cannot be stored in a CSV field")
        lines.append(",".join(values))
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_manifest(path):
    """Reads a manifest CSV as a list of dicts."""
    with open(path, encoding="utf-8", newline="") as fin:
        return list(csv.DictReader(fin))


def skip(outputs, options_file, options):
    """True if every output exists, the saved options equal ``options`` and
    no protocol or list file read by the last run has changed since (size
    and modification time, ``lobes.utils.fingerprints``).

    Also starts recording the inputs of the run about to prepare.
    """
    start_recording()
    if not all(os.path.isfile(path) for path in outputs):
        return False
    if not os.path.isfile(options_file):
        return False
    with open(options_file, encoding="utf-8") as fin:
        saved = json.load(fin)
    inputs = saved.pop("_inputs", {})
    if saved != json.loads(json.dumps(options)):
        return False
    changed = changed_inputs(inputs)
    if changed:
        logger.info("preparing again: %s changed since the last preparation", ", ".join(changed))
        return False
    return True


def prepared_splits(save_folder, options_file="prepare_options.json"):
    """The splits the last finished prepare run in ``save_folder`` wrote
    manifests for (its saved options' ``splits``)."""
    path = os.path.join(save_folder, options_file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: run the recipe's prepare step first")
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)["splits"]


def save_options(options_file, options):
    """Saves the options of a finished prepare run (written last), with the
    fingerprints of the protocol and list files it read."""
    saved = {**options, "_inputs": recorded_inputs()}
    atomic_write_text(options_file, json.dumps(saved, indent=2, sort_keys=True) + "\n")


def count_by(trials, *keys):
    """Counts trials by the given attributes, e.g. ``count_by(t, "label")``."""
    counts = {}
    for trial in trials:
        group = tuple(getattr(trial, key) for key in keys)
        counts[group] = counts.get(group, 0) + 1
    return dict(sorted(counts.items()))
