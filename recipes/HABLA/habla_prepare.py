"""Data preparation for HABLA (Latin-American Spanish anti-spoofing).

HABLA has no official split. Two published forms are accepted under
``data_folder`` (the folder holding the dataset folder, or that folder)::

    FinalDataset_16khz/                       full release
        Real/<Country>/<speaker>/arf_00295_0025366257.wav
        CycleGAN/... StarGAN/... Diff/... TTS/... TTS-VC/...
        protocol.txt                          (optional; may also sit beside it)

    HABLA_dataset/                            pre-split form
        train_dev/*.wav  eval/*.wav
        scp/{train,val,test}.lst              (ids, one a line)
        protocol.txt                          (optional)

Copies of HABLA differ and no layout document exists, so preparation is
strict only about what decides the label and lenient about naming:

- **label**: in the full release the folder decides: a file under ``Real/``
  is bona fide (its name must be a bona fide name), a file under any other
  top folder is a spoof of the family that folder names (``TTS-VC/...`` is
  TTS-VC, whatever the file is called). A protocol label contradicting the
  folder stops preparation with the protocol file and line. In the pre-split
  form (no folders) the name decides, as below.
- **names**: a speaker id is ``<country><gender>_<number>`` (``arf_00295``);
  a name that *starts* with one is bona fide; in any other name the text
  before the first speaker id is the method
  (``CycleGAN-arf_00295_0025366257-clm_00227`` is ``CycleGAN``). Every
  speaker id in a spoof's name is a speaker it involves; the target is the
  protocol's SPEAKER column, or without a protocol the last id not written
  ``TTS-<id>`` (see ``name_target``). Without a protocol a spoof name must
  hold a speaker id.
- **method**: the protocol's METHOD column wins; without a protocol the
  name's method, or for a spoof named like a bona fide file its method
  subfolder's or family folder's name.

Accepted variants, each counted in ``split_stats.json`` (``files_by_folder``:
files per top folder and method; ``layout_variants``: each variant with its
folder, method, file count and an example) and listed in one warning:
spoof folders holding method subfolders
(``TTS-VC/TTS-StarGAN/Peru-Argentina/TTS-StarGAN-pef_02790_..._TTS-arm_01523_0004.wav``),
methods not named after their folder (``TTS-StarGAN`` in ``TTS-VC/``),
spoofs named without a method prefix, spoof folders of unknown families, and
protocol methods that differ from the file names.

Splits (``split_mode``):

- ``speaker`` (default): speakers are ranked by a seeded hash of their id and
  dealt, in that order, into train/dev/test until each split holds its share
  (``split_ratios``) of the trials. Every trial goes to the split of its
  target speaker, *and* every other speaker it involves must be in that split
  too: a conversion between speakers of two splits is dropped (listed in
  ``dropped_cross_split.txt``). So no speaker, as bona fide talker, source or
  target, appears in two splits. The result depends only on the speaker ids,
  the trial counts and the seed, never on file-system order.
  ``cross_split_spoofs="target"`` keeps such conversions in their target's
  split instead: no voice crosses splits, but a source speaker's words and
  prosody may (reported as ``speakers_in_several_splits``).
- ``given``: the pre-split lists as published (train.lst -> train,
  val.lst -> dev, test.lst -> test). These share speakers; the overlap is
  reported.

Every used file is checked (exists, readable, 16 kHz). Writes
``{train,dev,test}.csv`` and ``split_stats.json`` (counts per split, class
and method; speakers per split).
"""

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass

from lobes.dataio.prepare import (
    AudioError,
    ProtocolError,
    Trial,
    attach_audio,
    count_by,
    parse_asvspoof_line,
    read_protocol,
    save_options,
    skip,
    write_manifest,
)
from lobes.utils.files import atomic_write_text, numbered_lines
from lobes.utils.fingerprints import note_input

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
LIST_FILES = {"train": "train.lst", "dev": "val.lst", "test": "test.lst"}
SPLIT_MODES = ("speaker", "given")
CROSS_SPLIT_POLICIES = ("drop", "target")
FULL_FOLDER, PRESPLIT_FOLDER = "FinalDataset_16khz", "HABLA_dataset"
PRESPLIT_AUDIO = ("train_dev", "eval")
BONAFIDE_FOLDER = "Real"
# Longest first, so that "TTS-VC..." is not taken for "TTS".
METHOD_FAMILIES = ("TTS-VC", "CycleGAN", "StarGAN", "Diff", "TTS")
VC_FAMILIES = ("CycleGAN", "StarGAN", "Diff")
# Not preceded by a letter or digit, so "Diff_..." never yields "iff_...".
SPEAKER_RE = re.compile(r"(?<![A-Za-z0-9])[a-z]{2}[fm]_\d+")


@dataclass(frozen=True)
class NameInfo:
    """What a HABLA file name says: label, method (``-`` if bona fide),
    speakers (in name order) and the target speaker (None without ids)."""

    label: str
    method: str
    speakers: tuple
    target: object = None


def name_target(stem, matches):
    """The speaker a spoof imitates, from the name alone.

    Conversions are named ``<method>-<source utt>-<target>``, so the target
    is the last speaker id; but an id written ``TTS-<id>`` inside a name is a
    TTS utterance used as the source (``TTS-StarGAN-pef_02790_..._TTS-arm_01523_0004``
    makes a TTS utterance of arm_01523 sound like pef_02790). So the target is
    the last id not preceded by ``TTS-``, or the last id when all are (a
    plain TTS file, ``TTS-arf_00295_0001``). A protocol's SPEAKER column,
    when there is one, overrides this.
    """
    if not matches:
        return None
    voiced = [m.group() for m in matches if not stem[: m.start()].endswith("TTS-")]
    return (voiced or [matches[-1].group()])[-1]


def parse_habla_name(stem):
    """Reads label, method and speaker ids from a file name (no extension).

    Example
    -------
    >>> parse_habla_name("arf_00295_0025366257")
    NameInfo(label='bonafide', method='-', speakers=('arf_00295',), target='arf_00295')
    >>> parse_habla_name("TTS-VC-StarGAN-arf_00295_0025366257-clm_00227")
    NameInfo(label='spoof', method='TTS-VC-StarGAN', speakers=('arf_00295', 'clm_00227'), target='clm_00227')
    >>> parse_habla_name("TTS-StarGAN-pef_02790_5512761628_TTS-arm_01523_0004").target
    'pef_02790'
    >>> parse_habla_name("Diff-0042")
    NameInfo(label='spoof', method='Diff-0042', speakers=(), target=None)
    """
    matches = list(SPEAKER_RE.finditer(stem))
    speakers = tuple(m.group() for m in matches)
    target = name_target(stem, matches)
    if matches and matches[0].start() == 0:
        return NameInfo("bonafide", "-", speakers, target)
    method = stem[: matches[0].start()].rstrip("-_") if matches else stem
    return NameInfo("spoof", method, speakers, target)


def method_family(method):
    """The spoofing family of a method name (itself when unknown).

    A TTS output converted by a voice-conversion method (``TTS-StarGAN``,
    ``TTS-CycleGAN``, ``TTS-Diff``) is a TTS-VC spoof: HABLA's TTS-VC family
    is TTS followed by VC. This is read from the method names, not from a
    documented list, so where the files sit in family folders the folder
    decides (see ``describe_file``).

    Example
    -------
    >>> method_family("TTS-VC-StarGAN"), method_family("TTS-StarGAN"), method_family("TTS")
    ('TTS-VC', 'TTS-VC', 'TTS')
    >>> method_family("Other")
    'Other'
    """
    for vc_family in VC_FAMILIES:
        if method == f"TTS-{vc_family}" or method.startswith((f"TTS-{vc_family}-", f"TTS-{vc_family}_")):
            return "TTS-VC"
    for family in METHOD_FAMILIES:
        if method == family or method.startswith((family + "-", family + "_")):
            return family
    return method


def trial_speakers(trial):
    """Every speaker a trial involves (``extra["speakers"]``, ``+``-joined)."""
    return trial.extra["speakers"].split("+")


def find_layout(data_folder):
    """``("full" | "presplit", root)`` for a HABLA folder in either form.

    Example
    -------
    >>> find_layout("/no/such/folder")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    FileNotFoundError: no HABLA data in '/no/such/folder': expected FinalDataset_16khz/Real/ or
    HABLA_dataset/{train_dev,eval}/
    """
    for root in (os.path.join(data_folder, FULL_FOLDER), data_folder):
        if os.path.isdir(os.path.join(root, BONAFIDE_FOLDER)):
            return "full", root
    for root in (os.path.join(data_folder, PRESPLIT_FOLDER), data_folder):
        if all(os.path.isdir(os.path.join(root, sub)) for sub in PRESPLIT_AUDIO):
            return "presplit", root
    raise FileNotFoundError(
        f"no HABLA data in {data_folder!r}: expected {FULL_FOLDER}/{BONAFIDE_FOLDER}/ "
        f"or {PRESPLIT_FOLDER}/{{{','.join(PRESPLIT_AUDIO)}}}/"
    )


def find_beside(data_folder, root, name):
    """``name`` in the dataset folder or the folder holding it, else None."""
    for folder in (root, data_folder):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    return None


def index_audio(folders):
    """Maps each ``.wav`` stem under ``folders`` to its path; stems are ids.

    Two files with one stem would make ids ambiguous, so that is an error.
    """
    index = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for name in sorted(filenames):
                stem, ext = os.path.splitext(name)
                if ext.lower() != ".wav":
                    continue
                path = os.path.join(dirpath, name)
                if stem in index:
                    raise AudioError(f"two audio files share the id {stem!r}: {index[stem]} and {path}")
                index[stem] = path
    if not index:
        raise AudioError(f"no .wav files under {', '.join(folders)}")
    return index


@dataclass(frozen=True)
class FileInfo:
    """What a file's place and name say about it.

    ``folder`` is its top folder under the dataset root; ``variants`` names
    the departures from the usual naming that were accepted (keys of
    ``VARIANTS``).
    """

    label: str
    method: str
    family: str
    speakers: tuple
    target: object
    folder: str
    variants: tuple = ()


# Copies of HABLA differ and no layout document exists, so these are accepted
# (and reported) rather than refused. What decides the label never varies:
# Real/ holds bona fide files, every other folder spoofs.
VARIANTS = {
    "method_subfolder": "spoof folder holding method subfolders",
    "method_not_folder": "method name not starting with its folder's name "
    "(family from the folder, method from the name)",
    "unprefixed_spoof": "spoof named without a method prefix (method from its folder)",
    "unknown_folder": "spoof folder of no known family (its name is the family)",
    "protocol_method": "protocol method differing from the file name's (the protocol wins)",
}


def method_subfolder(parts, top, name_method):
    """The method subfolder in ``<family>/<method>/.../file``, else None.

    A second-level folder counts as a method folder when it is named after
    the file's method or belongs to the top folder's family (speaker or
    country folders do neither).
    """
    if len(parts) < 3:
        return None
    sub = parts[1]
    return sub if sub == name_method or method_family(sub) == top else None


def describe_file(path, root, kind):
    """Label, method, family and speakers a file's folder and name imply.

    In the full release the folder decides the label: ``Real/`` holds bona
    fide files (a spoof-like name there is an error) and any other top
    folder holds spoofs of the family it names. The method comes from the
    name (the text before its first speaker id), or, for a spoof named like
    a bona fide file, from its method subfolder or family folder. In the
    pre-split form the name decides. Raises ``ValueError`` naming the file.

    Example
    -------
    >>> info = describe_file("/d/TTS-VC/TTS-StarGAN/Peru-Argentina/"
    ...     "TTS-StarGAN-pef_02790_5512761628_TTS-arm_01523_0004.wav", "/d", "full")
    >>> info.label, info.method, info.family, info.speakers
    ('spoof', 'TTS-StarGAN', 'TTS-VC', ('pef_02790', 'arm_01523'))
    >>> info.variants
    ('method_subfolder', 'method_not_folder')
    """
    info = parse_habla_name(os.path.splitext(os.path.basename(path))[0])
    parts = os.path.relpath(path, root).split(os.sep)
    if kind != "full":
        family = method_family(info.method) if info.label == "spoof" else "-"
        return FileInfo(info.label, info.method, family, info.speakers, info.target, parts[0])
    if len(parts) == 1:
        raise ValueError(f"{path} is not inside {BONAFIDE_FOLDER}/ or a spoof (method) folder")
    top = parts[0]
    if top == BONAFIDE_FOLDER:
        if info.label != "bonafide":
            raise ValueError(
                f"{path} is in {BONAFIDE_FOLDER}/ but its name is not a bona fide name "
                f"(one starting with a speaker id such as 'arf_00295'); a spoof belongs "
                f"in a method folder"
            )
        return FileInfo("bonafide", "-", "-", info.speakers, info.target, top)
    variants = []
    name_method = info.method if info.label == "spoof" else None
    sub = method_subfolder(parts, top, name_method)
    if sub:
        variants.append("method_subfolder")
    if name_method is None:
        method = sub or top
        variants.append("unprefixed_spoof")
    else:
        method = name_method
        if not method.startswith(top):
            variants.append("method_not_folder")
    if top not in METHOD_FAMILIES:
        variants.append("unknown_folder")
    return FileInfo("spoof", method, top, info.speakers, info.target, top, tuple(variants))


class LayoutReport:
    """Files per folder and method, and the naming variants met, for
    ``split_stats.json`` and one aggregated warning."""

    def __init__(self):
        self.by_folder = {}
        self.variants = {}
        self.varied_files = set()

    def add(self, path, info, method, extra_variants=()):
        """Counts one file under its folder and method, with its naming variants."""
        folder = self.by_folder.setdefault(info.folder, {})
        folder[method] = folder.get(method, 0) + 1
        for variant in info.variants + tuple(extra_variants):
            entry = self.variants.setdefault((variant, info.folder, method), {"files": 0, "example": path})
            entry["files"] += 1
            self.varied_files.add(path)

    def as_stats(self):
        """``files_by_folder`` ({folder: {method: n}}) and ``layout_variants``."""
        return {
            "files_by_folder": {f: dict(sorted(m.items())) for f, m in sorted(self.by_folder.items())},
            "layout_variants": [
                {"variant": v, "description": VARIANTS[v], "folder": f, "method": m, **entry}
                for (v, f, m), entry in sorted(self.variants.items())
            ],
        }

    def warning(self):
        """One message listing every variant with its file count, or None.

        Example
        -------
        >>> report = LayoutReport()
        >>> info = FileInfo("spoof", "TTS-StarGAN", "TTS-VC", (), None, "TTS-VC", ("method_not_folder",))
        >>> report.add("TTS-VC/x.wav", info, info.method)
        >>> print(report.warning())  # doctest: +NORMALIZE_WHITESPACE
        HABLA: 1 file departs from the usual naming; accepted (counts per folder and method in
        split_stats.json):
          1 in TTS-VC/, method TTS-StarGAN: method name not starting with its folder's name
          (family from the folder, method from the name); e.g. TTS-VC/x.wav
        """
        if not self.variants:
            return None
        files = len(self.varied_files)
        lines = [
            f"HABLA: {files} file{'s' * (files != 1)} depart{'s' * (files == 1)} from the usual "
            f"naming; accepted (counts per folder and method in split_stats.json):"
        ]
        for (variant, folder, method), entry in sorted(self.variants.items()):
            lines.append(
                f"  {entry['files']} in {folder}/, method {method}: {VARIANTS[variant]}; "
                f"e.g. {entry['example']}"
            )
        return "\n".join(lines)


def trial_from_name(stem, path, root, kind, report):
    """A trial from a file alone (no protocol); errors name the file."""
    info = describe_file(path, root, kind)
    if info.label == "bonafide" and len(info.speakers) != 1:
        raise ValueError(f"{path}: a bona fide name should hold one speaker id, found {info.speakers}")
    if info.label == "spoof" and not info.speakers:
        raise ValueError(
            f"{path}: cannot read the speaker ids (like 'arf_00295') of this spoof name; "
            f"supply a protocol.txt"
        )
    report.add(path, info, info.method)
    return Trial(
        utt_id=stem,
        label=info.label,
        attack=info.method,
        speaker=info.target,
        extra={"speakers": "+".join(sorted(set(info.speakers))), "family": info.family},
    )


def trials_from_names(index, root, kind, report):
    """One trial per audio file, labelled from folders (and names)."""
    return [trial_from_name(stem, path, root, kind, report) for stem, path in sorted(index.items())]


def trials_from_protocol(path, index, root, kind, skip_missing, report):
    """Protocol trials checked against their files' folders and names.

    The label must agree with the folder (full release) or name (pre-split
    form); the protocol's method wins over the name's. Returns
    ``(trials, missing)``; a protocol entry without audio fails with the
    protocol file and line unless ``skip_missing``.
    """

    def parse_line(fields):
        trial = parse_asvspoof_line(fields)
        named, family = set(), method_family(trial.attack) if trial.label == "spoof" else "-"
        if trial.utt_id in index:
            wav = index[trial.utt_id]
            info = describe_file(wav, root, kind)
            if info.label != trial.label:
                why = (
                    f"is in {info.folder}/, which holds {info.label} files"
                    if kind == "full" else f"is named like a {info.label} file"
                )
                raise ValueError(f"labelled {trial.label} but {wav} {why}")
            if trial.label == "bonafide" and info.speakers and info.speakers != (trial.speaker,):
                raise ValueError(f"speaker {trial.speaker} but the file name says {info.speakers}")
            named = set(info.speakers)
            if kind == "full":
                family = info.family
            differs = trial.label == "spoof" and trial.attack != info.method
            report.add(wav, info, trial.attack, ["protocol_method"] if differs else [])
        trial.extra = {"speakers": "+".join(sorted(named | {trial.speaker})), "family": family}
        return trial

    trials = read_protocol(path, parse_line)
    missing = [t for t in trials if t.utt_id not in index]
    if missing and not skip_missing:
        raise AudioError(
            f"{missing[0].origin}: no audio file {missing[0].utt_id}.wav under {root} "
            f"({len(missing)} protocol entries have none)"
        )
    return [t for t in trials if t.utt_id in index], missing


def check_ratios(ratios):
    """Three non-negative split ratios summing to one.

    Example
    -------
    >>> check_ratios([0.8, 0.1, 0.1])
    (0.8, 0.1, 0.1)
    >>> check_ratios([0.8, 0.1])
    Traceback (most recent call last):
    ...
    ValueError: split_ratios must be three numbers (train, dev, test) summing to 1, got [0.8, 0.1]
    """
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(
            f"split_ratios must be three numbers (train, dev, test) summing to 1, got {list(ratios)}"
        )
    return ratios


def speaker_rank(speaker, seed):
    """A seeded, platform-independent sort key for a speaker id."""
    return hashlib.sha256(f"{seed}:{speaker}".encode()).hexdigest()


def assign_speakers(weights, ratios, seed):
    """Deals speakers into splits, in seeded-hash order, by trial share.

    Each speaker goes to the split whose share of the cumulative trial count
    holds the middle of that speaker's trials, so split sizes follow
    ``ratios`` as closely as whole speakers allow.

    Arguments
    ---------
    weights : dict
        Speaker id -> number of trials it anchors (0 is allowed).
    ratios : sequence of float
        Shares of train, dev and test.
    seed : int
        Changes the speaker order, hence the split.

    Returns
    -------
    dict
        Speaker id -> split name.

    Example
    -------
    >>> split = assign_speakers({"arf_1": 5, "clm_2": 5, "pef_3": 5, "vem_4": 5}, [0.5, 0.25, 0.25], 0)
    >>> sorted(split.values())
    ['dev', 'test', 'train', 'train']
    """
    ratios = check_ratios(ratios)
    bounds = [sum(ratios[: i + 1]) for i in range(len(SPLITS))]
    total = max(sum(weights.values()), 1)
    assignment, done = {}, 0
    for speaker in sorted(weights, key=lambda s: speaker_rank(s, seed)):
        middle = (done + weights[speaker] / 2) / total
        index = next((i for i, bound in enumerate(bounds) if middle < bound), len(SPLITS) - 1)
        assignment[speaker] = SPLITS[index]
        done += weights[speaker]
    return assignment


def speaker_split(trials, ratios, seed, cross_split="drop"):
    """Speaker-disjoint split: ``({split: trials}, dropped)``.

    A trial goes to its target speaker's split; one involving a speaker of
    another split is dropped (``cross_split="drop"``) or kept there anyway
    (``"target"``).
    """
    weights = {}
    for trial in trials:
        for speaker in trial_speakers(trial):
            weights.setdefault(speaker, 0)
        weights[trial.speaker] += 1
    assignment = assign_speakers(weights, ratios, seed)
    splits, dropped = {name: [] for name in SPLITS}, []
    for trial in sorted(trials, key=lambda t: t.utt_id):
        home = assignment[trial.speaker]
        if cross_split == "target" or all(assignment[s] == home for s in trial_speakers(trial)):
            splits[home].append(trial)
        else:
            dropped.append(trial)
    return splits, dropped


def read_list(path):
    """Ids of a ``.lst`` file with their line numbers (paths and ``.wav`` stripped)."""
    ids = {}
    note_input(path)  # an edit makes the next run prepare again
    for line_no, _, line in numbered_lines(path, "split list"):
        utt_id = os.path.splitext(os.path.basename(line.strip().replace("\\", "/")))[0]
        if utt_id in ids:
            raise ProtocolError(f"{path}:{line_no}: {utt_id} already listed on line {ids[utt_id]}")
        ids[utt_id] = line_no
    if not ids:
        raise ProtocolError(f"{path}: no ids")
    return ids


def given_split(scp_folder, trials, skip_missing):
    """The published lists as splits: ``({split: trials}, missing)``."""
    by_id = {t.utt_id: t for t in trials}
    splits, missing, owner = {}, [], {}
    for split in SPLITS:
        path = os.path.join(scp_folder, LIST_FILES[split])
        ids = read_list(path)
        for utt_id, line_no in ids.items():
            if utt_id in owner:
                raise ProtocolError(f"{path}:{line_no}: {utt_id} is also listed in {owner[utt_id]}")
            owner[utt_id] = f"{path}:{line_no}"
            if utt_id not in by_id and not skip_missing:
                raise AudioError(f"{path}:{line_no}: {utt_id} has no audio file (or protocol entry)")
        splits[split] = [by_id[i] for i in sorted(ids) if i in by_id]
        missing += [Trial(i, "", "", "") for i in sorted(ids) if i not in by_id]
    return splits, missing


def split_stats(splits, dropped, missing, unused):
    """Counts per split, class and method; speakers per split and shared ones."""
    stats = {"splits": {}}
    owners = {}
    for name, trials in splits.items():
        speakers = {s for t in trials for s in trial_speakers(t)}
        for speaker in speakers:
            owners.setdefault(speaker, []).append(name)
        labels = count_by(trials, "label")
        stats["splits"][name] = {
            "trials": len(trials),
            "bonafide": labels.get(("bonafide",), 0),
            "spoof": labels.get(("spoof",), 0),
            "speakers": len(speakers),
            "by_method": {attack: n for (attack,), n in count_by(trials, "attack").items()},
        }
    stats["speakers_in_several_splits"] = sorted(s for s, o in owners.items() if len(o) > 1)
    stats["dropped_cross_split"] = len(dropped)
    stats["missing_audio"] = len(missing)
    stats["unused_audio_files"] = unused
    return stats


def format_stats(stats):
    """A plain-text table of ``split_stats``.

    Example
    -------
    >>> stats = {"splits": {"train": {"trials": 3, "bonafide": 1, "spoof": 2, "speakers": 2,
    ...          "by_method": {"-": 1, "TTS": 2}}}, "speakers_in_several_splits": [],
    ...          "dropped_cross_split": 0, "missing_audio": 0, "unused_audio_files": 0}
    >>> print(format_stats(stats))
    split  trials  bonafide  spoof  speakers  TTS
    train       3         1      2         2    2
    dropped (cross-split conversions): 0; missing audio: 0; unused audio files: 0; speakers in several splits: 0
    """
    methods = sorted({m for s in stats["splits"].values() for m in s["by_method"]} - {"-"})
    header = ["split", "trials", "bonafide", "spoof", "speakers", *methods]
    rows = [header]
    for name, split in stats["splits"].items():
        cells = [split["trials"], split["bonafide"], split["spoof"], split["speakers"]]
        rows.append([name, *cells, *(split["by_method"].get(m, 0) for m in methods)])
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join([str(row[0]).ljust(widths[0])] + [str(c).rjust(w) for c, w in zip(row[1:], widths[1:])])
        for row in rows
    ]
    lines.append(
        f"dropped (cross-split conversions): {stats['dropped_cross_split']}; "
        f"missing audio: {stats['missing_audio']}; unused audio files: {stats['unused_audio_files']}; "
        f"speakers in several splits: {len(stats['speakers_in_several_splits'])}"
    )
    return "\n".join(lines)


def check_splits(splits):
    """Every split must hold both classes: dev and test EERs need them."""
    for name, trials in splits.items():
        labels = {t.label for t in trials}
        if labels != {"bonafide", "spoof"}:
            raise ValueError(
                f"split {name!r} holds {len(trials)} trials with labels {sorted(labels)}; "
                f"it needs bona fide and spoof trials (too few speakers for split_ratios?)"
            )


def write_listing(path, trials):
    """Writes one utterance id a line (atomically)."""
    atomic_write_text(path, "".join(f"{t.utt_id}\n" for t in trials))


def prepare_habla(
    data_folder,
    save_folder,
    split_mode="speaker",
    split_ratios=(0.8, 0.1, 0.1),
    split_seed=0,
    cross_split_spoofs="drop",
    skip_missing=False,
):
    """Validates HABLA, splits it and writes one manifest CSV per split.

    Arguments
    ---------
    data_folder : str
        Folder holding ``FinalDataset_16khz/`` or ``HABLA_dataset/`` (or
        that folder itself).
    save_folder : str
        Where ``{train,dev,test}.csv`` and ``split_stats.json`` are written.
    split_mode : str
        ``speaker`` (seeded speaker-disjoint split) or ``given`` (the
        pre-split form's ``scp/*.lst`` lists).
    split_ratios : sequence of float
        Train, dev and test shares of the trials (``speaker`` mode).
    split_seed : int
        Seed of the speaker order (``speaker`` mode); keep it fixed while
        varying the training seed.
    cross_split_spoofs : str
        ``drop`` (default) or ``target``: what becomes of a conversion whose
        source and target speakers fall in different splits.
    skip_missing : bool
        List and skip protocol or list entries without audio instead of
        failing. Unreadable or wrongly sampled files always fail.

    Returns
    -------
    dict
        The split statistics (also in ``split_stats.json``).

    Example
    -------
    >>> prepare_habla("/no/such/folder", "out", split_mode="random")
    Traceback (most recent call last):
    ...
    ValueError: split_mode must be one of ('speaker', 'given'), got 'random'
    """
    if split_mode not in SPLIT_MODES:
        raise ValueError(f"split_mode must be one of {SPLIT_MODES}, got {split_mode!r}")
    if cross_split_spoofs not in CROSS_SPLIT_POLICIES:
        raise ValueError(
            f"cross_split_spoofs must be one of {CROSS_SPLIT_POLICIES}, got {cross_split_spoofs!r}"
        )
    ratios = check_ratios(split_ratios)
    kind, root = find_layout(data_folder)
    protocol = find_beside(data_folder, root, "protocol.txt")
    outputs = [os.path.join(save_folder, f"{split}.csv") for split in SPLITS]
    stats_file = os.path.join(save_folder, "split_stats.json")
    options_file = os.path.join(save_folder, "prepare_options.json")
    options = {
        "data_folder": os.path.abspath(root),
        "protocol": protocol and os.path.abspath(protocol),
        "split_mode": split_mode,
        "split_ratios": list(ratios),
        "split_seed": split_seed,
        "cross_split_spoofs": cross_split_spoofs,
        "skip_missing": skip_missing,
        # 2: manifests gained the family column; older ones are rebuilt.
        "manifest_version": 2,
    }
    if skip(outputs + [stats_file], options_file, options):
        logger.info("HABLA manifests already prepared in %s", save_folder)
        with open(stats_file, encoding="utf-8") as fin:
            return json.load(fin)
    os.makedirs(save_folder, exist_ok=True)

    folders = [root] if kind == "full" else [os.path.join(root, sub) for sub in PRESPLIT_AUDIO]
    index = index_audio(folders)
    report = LayoutReport()
    if protocol:
        trials, missing = trials_from_protocol(protocol, index, root, kind, skip_missing, report)
    else:
        trials, missing = trials_from_names(index, root, kind, report), []

    dropped = []
    if split_mode == "given":
        scp = find_beside(data_folder, root, "scp")
        if kind != "presplit" or scp is None:
            raise FileNotFoundError(
                f"split_mode 'given' needs the pre-split form's scp/ lists; none in {root}"
            )
        splits, list_missing = given_split(scp, trials, skip_missing)
        missing += list_missing
    else:
        splits, dropped = speaker_split(trials, ratios, split_seed, cross_split_spoofs)
    check_splits(splits)

    used = [t for name in SPLITS for t in splits[name]]
    attach_audio(used, lambda t: index[t.utt_id], desc="checking HABLA audio",
                 cache_file=os.path.join(save_folder, "integrity.json"))
    for name, output in zip(SPLITS, outputs):
        write_manifest(output, splits[name], extra_fields=["speakers", "family"])
    write_listing(os.path.join(save_folder, "dropped_cross_split.txt"), dropped)
    write_listing(os.path.join(save_folder, "missing_audio.txt"), missing)

    stats = split_stats(splits, dropped, missing, unused=len(index) - len(used) - len(dropped))
    stats.update(layout=kind, protocol=protocol, split_mode=split_mode, **report.as_stats())
    atomic_write_text(stats_file, json.dumps(stats, indent=2) + "\n")
    logger.info("HABLA %s split (%s layout):\n%s", split_mode, kind, format_stats(stats))
    if report.warning():
        logger.warning(report.warning())
    if missing:
        logger.warning("%d listed entries have no audio and were skipped", len(missing))
    if split_mode == "given" and stats["speakers_in_several_splits"]:
        logger.warning(
            "the given lists share %d speakers between splits: results are not speaker-independent",
            len(stats["speakers_in_several_splits"]),
        )
    save_options(options_file, options)
    return stats
