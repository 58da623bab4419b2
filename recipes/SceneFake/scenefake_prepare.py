"""Data preparation for SceneFake (real speech with a replaced acoustic scene).

The release's layout is not officially documented, so two forms are accepted
under ``data_folder`` (or ``data_folder/SceneFake``):

Folder form, the label comes from the folder::

    <split>/real/*.wav      bona fide
    <split>/fake/*.wav      spoof
    (``bonafide``/``spoof`` are accepted as folder names too; .flac as well)

Flat form, one audio folder and one label list per split::

    wav/*.wav
    <split>.txt | <split>_label.txt | <split>_labels.txt   (here or in labels/)

Split-list form, one audio folder per split with a label list beside it
(or inside it)::

    <split>/**/*.wav    (any depth: files are found by name)
    <split>.txt | <split>_label.txt | <split>_labels.txt   (here, in labels/ or in <split>/)
    or the one file in <split>/, whatever its name, whose lines name the split's audio

A label list line is ``NAME LABEL`` (NAME a file in ``wav/`` or ``<split>/``,
with or without extension; LABEL ``real``/``fake`` or ``bonafide``/``spoof``),
or a 5-column ASVspoof line ``SPEAKER UTT_ID - ATTACK KEY``. As for HABLA, a
list that names the label is read rather than the folders guessed at.

Splits are discovered: ``train`` and ``dev`` must exist, and at least one of
the test splits named by the caller (the recipe's ``test_sets``). Lenient
about form, strict about content: the class folder (or the label list)
decides the label; files in subfolders of a class folder (one per scene,
say) are read, labelled by that class folder and reported in one warning
with counts per folder; unknown class folders, unknown labels, duplicate ids
and splits holding a single class are errors that name the folder or the
file and line. Writes ``<split>.csv`` for every split found.
"""

import itertools
import logging
import os

from lobes.dataio.prepare import (
    Trial,
    attach_audio,
    checked_trials,
    count_by,
    parse_asvspoof_line,
    read_manifest,
    read_protocol,
    save_options,
    skip,
    write_manifest,
)
from lobes.utils.safe_paths import safe_join

logger = logging.getLogger(__name__)

REQUIRED_SPLITS = ("train", "dev")
LABELS = {
    "real": "bonafide",
    "bonafide": "bonafide",
    "fake": "spoof",
    "spoof": "spoof",
}
AUDIO_EXTENSIONS = (".wav", ".flac")
# SceneFake names no attack types: every fake trial shares one attack group.
FAKE_ATTACK = "fake"
LIST_NAMES = ("{}.txt", "{}_label.txt", "{}_labels.txt")
OPTIONS_FILE = "prepare_options.json"


def scenefake_root(data_folder):
    """The folder holding the data: ``data_folder`` or ``data_folder/SceneFake``.

    Example
    -------
    >>> scenefake_root("/no/such/folder")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    FileNotFoundError: no SceneFake data in '/no/such/folder': expected train/{real,fake}/ (folder form) or wav/
    with label lists (flat form)
    """
    for candidate in (data_folder, os.path.join(data_folder, "SceneFake")):
        if os.path.isdir(os.path.join(candidate, "wav")) or os.path.isdir(
            os.path.join(candidate, "train")
        ):
            return candidate
    raise FileNotFoundError(
        f"no SceneFake data in {data_folder!r}: expected train/{{real,fake}}/ (folder form) "
        "or wav/ with label lists (flat form)"
    )


def detect_layout(root):
    """``"flat"`` when ``root/wav`` exists; ``"split-list"`` when ``root/train``
    has a label list (beside it, in ``labels/`` or in it); else ``"folder"``.

    Flat and folder forms at once are ambiguous (which labels would win?)
    and refused.
    """
    flat = os.path.isdir(os.path.join(root, "wav"))
    folders = os.path.isdir(os.path.join(root, "train"))
    if flat and folders:
        raise ValueError(
            f"{root} holds both wav/ (flat form) and train/ (folder form); "
            "keep one form or point data_folder at one of them"
        )
    if flat:
        return "flat"
    return "split-list" if split_list_path(root, "train") else "folder"


def split_list_path(root, split):
    """The label list of a split folder (split-list form), or None: one of
    ``LIST_NAMES`` beside or inside it, else the one file inside it, whatever
    it is called, whose lines name the split's audio (``named_label_list``)."""
    inside = label_list_path(os.path.join(root, split), split)
    beside = label_list_path(root, split)
    if inside and beside:
        raise ValueError(f"two label lists for split {split!r}: {beside} and {inside}; keep one")
    return inside or beside or named_label_list(os.path.join(root, split))


def named_label_list(folder, lines_checked=20):
    """The one file directly in ``folder`` whose first ``lines_checked``
    lines each name an audio file of the folder (``NAME LABEL``, or the
    ASVspoof ``SPEAKER UTT_ID - ATTACK KEY``), whatever the file is called;
    None when there is none; an error naming them when several qualify.

    Example
    -------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a1.wav", "a2.wav"):
    ...     _ = (folder / name).write_bytes(b"")
    >>> _ = (folder / "notes.txt").write_text("recorded in 2022\\n")
    >>> _ = (folder / "annotations.lst").write_text("a1 real\\na2.wav fake\\n")
    >>> os.path.basename(named_label_list(str(folder)))
    'annotations.lst'
    """
    if not os.path.isdir(folder):
        return None
    audio = {
        os.path.splitext(name)[0]
        for _, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(AUDIO_EXTENSIONS)
    }
    found = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or name.lower().endswith(AUDIO_EXTENSIONS):
            continue
        try:
            with open(path, encoding="utf-8") as fin:  # the first lines only, whatever the size
                lines = list(itertools.islice((line.split() for line in fin if line.strip()), lines_checked))
        except (UnicodeDecodeError, OSError):
            continue
        names = [fields[1] if len(fields) == 5 else fields[0] for fields in lines if len(fields) >= 2]
        if lines and len(names) == len(lines) and all(os.path.splitext(n)[0] in audio for n in names):
            found.append(path)
    if len(found) > 1:
        raise ValueError(f"{folder} holds several label lists {found}: keep one")
    return found[0] if found else None


def label_list_path(root, split):
    """The label list of ``split`` in the flat form, or None.

    Example
    -------
    >>> label_list_path("/no/such/folder", "dev") is None
    True
    """
    found = [
        os.path.join(folder, pattern.format(split))
        for folder in (root, os.path.join(root, "labels"))
        for pattern in LIST_NAMES
        if os.path.isfile(os.path.join(folder, pattern.format(split)))
    ]
    if len(found) > 1:
        raise ValueError(f"several label lists for split {split!r}: {found}; keep one")
    return found[0] if found else None


def split_source(root, layout, split):
    """Where ``split`` lives: its folder (folder form) or label list (flat form)."""
    if layout == "flat":
        return label_list_path(root, split)
    folder = os.path.join(root, split)
    if layout == "split-list":
        return split_list_path(root, split) if os.path.isdir(folder) else None
    return folder if os.path.isdir(folder) else None


def discover_splits(root, layout, test_splits):
    """Maps every split present to its folder or label list.

    ``train`` and ``dev`` are required; test splits absent from the data are
    left out (logged), but at least one must exist.
    """
    overlap = set(test_splits) & set(REQUIRED_SPLITS)
    if overlap:
        raise ValueError(f"test splits {sorted(overlap)} are also training splits")
    sources = {}
    for split in REQUIRED_SPLITS:
        sources[split] = split_source(root, layout, split)
        if sources[split] is None:
            raise FileNotFoundError(f"SceneFake ({layout} form) in {root}: no {split} split")
    found_tests = {split: split_source(root, layout, split) for split in test_splits}
    absent = [split for split, source in found_tests.items() if source is None]
    if len(absent) == len(found_tests):
        raise FileNotFoundError(
            f"SceneFake ({layout} form) in {root}: none of the test splits {list(test_splits)}"
        )
    if absent:
        logger.info("SceneFake: test splits %s not present; they will not be scored", absent)
    sources.update({split: source for split, source in found_tests.items() if source})
    return sources


def split_name(name):
    """``(utt_id, file_name)`` of a label-list entry, with or without extension.

    Example
    -------
    >>> split_name("SF_0001.wav"), split_name("SF_0001")
    (('SF_0001', 'SF_0001.wav'), ('SF_0001', 'SF_0001.wav'))
    """
    stem, extension = os.path.splitext(name)
    if extension.lower() in AUDIO_EXTENSIONS:
        return stem, name
    return name, name + ".wav"


def parse_label_line(fields):
    """``NAME LABEL`` or a 5-column ASVspoof line -> ``Trial``.

    ``wav`` holds the file name relative to ``wav/`` until audio is attached.

    Example
    -------
    >>> parse_label_line(["SF_0001.wav", "fake"])
    Trial(utt_id='SF_0001', label='spoof', attack='fake', speaker='-', wav='SF_0001.wav', duration=0.0, extra={})
    >>> parse_label_line(["SF_0001", "noisy"])
    Traceback (most recent call last):
    ...
    ValueError: label 'noisy' is not one of real, bonafide, fake, spoof
    """
    if len(fields) == 5:
        trial = parse_asvspoof_line(fields)
        trial.utt_id, trial.wav = split_name(trial.utt_id)
        return trial
    if len(fields) != 2:
        raise ValueError(
            f"expected 'NAME LABEL' or 'SPEAKER UTT_ID - ATTACK KEY', got {len(fields)} columns"
        )
    name, label = fields
    if label.lower() not in LABELS:
        raise ValueError(f"label {label!r} is not one of {', '.join(LABELS)}")
    label = LABELS[label.lower()]
    utt_id, file_name = split_name(name)
    attack = FAKE_ATTACK if label == "spoof" else "-"
    return Trial(utt_id=utt_id, label=label, attack=attack, speaker="-", wav=file_name)


def folder_trials(split_folder):
    """Trials of a folder-form split; ids are ``<class folder>/<path to file,
    without extension>``.

    The class folder is part of the id because a fake file may share its
    name with the real recording it was made from. The class folder decides
    the label (strict); below it, files may sit in subfolders (e.g. one per
    acoustic scene), which copies of SceneFake differ on: they are read and
    counted (``nested_folder_counts``), never skipped.
    """
    trials = []
    for class_name in sorted(os.listdir(split_folder)):
        class_folder = os.path.join(split_folder, class_name)
        if not os.path.isdir(class_folder):
            continue  # stray files (readme, checksums) beside the class folders
        label = LABELS.get(class_name.lower())
        if label is None:
            raise ValueError(
                f"{class_folder}: unknown class folder {class_name!r}; expected real/ and fake/ "
                "(or bonafide/ and spoof/)"
            )
        for dirpath, dirnames, filenames in os.walk(class_folder):
            dirnames.sort()
            for file_name in sorted(filenames):
                stem, extension = os.path.splitext(file_name)
                if extension.lower() not in AUDIO_EXTENSIONS:
                    continue
                path = os.path.join(dirpath, file_name)
                relative = os.path.relpath(path, class_folder)
                if any(char.isspace() or char == "," for char in relative):
                    raise ValueError(
                        f"{path}: spaces and commas in file names cannot be stored in "
                        "manifests and score files"
                    )
                trials.append(Trial(
                    utt_id=f"{class_name}/{os.path.splitext(relative)[0].replace(os.sep, '/')}",
                    label=label,
                    attack=FAKE_ATTACK if label == "spoof" else "-",
                    speaker="-",
                    wav=path,
                ))
    return trials


def nested_folder_counts(split, trials):
    """``{"<split>/<class>/<subfolder>": n}`` for trials below a class folder's
    subfolders (none in the usual layout).

    Example
    -------
    >>> nested_folder_counts("eval", [Trial("fake/street/a", "spoof", "fake", "-"),
    ...                               Trial("real/b", "bonafide", "-", "-")])
    {'eval/fake/street': 1}
    """
    counts = {}
    for trial in trials:
        folder = os.path.dirname(trial.utt_id)
        if "/" in folder:
            key = f"{split}/{folder}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def load_split(root, layout, split, source, save_folder, skip_missing):
    """Trials of one split with audio checked (``wav`` and ``duration`` set)."""
    if layout == "folder":
        trials = folder_trials(source)
        trials, _ = attach_audio(trials, lambda t: t.wav, desc=f"checking {split} audio",
                                 cache_file=os.path.join(save_folder, f"{split}_integrity.json"))
        return trials
    trials = read_protocol(source, parse_label_line)
    if layout == "split-list":
        split_folder = os.path.join(root, split)
        index = audio_index(split_folder)
        return checked_trials(
            trials, lambda t: index.get(t.utt_id) or safe_join(split_folder, t.wav, t.origin),
            split, save_folder, skip_missing,
        )
    wav_folder = os.path.join(root, "wav")
    return checked_trials(
        trials, lambda t: safe_join(wav_folder, t.wav, t.origin), split, save_folder, skip_missing
    )


def audio_index(folder):
    """``{file stem: path}`` of the audio files anywhere under ``folder``;
    a stem found twice is an error (a list line could not say which)."""
    index = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for file_name in sorted(filenames):
            stem, extension = os.path.splitext(file_name)
            if extension.lower() in AUDIO_EXTENSIONS:
                path = os.path.join(dirpath, file_name)
                if stem in index:
                    raise ValueError(f"two audio files share the name {stem!r}: {index[stem]} and {path}")
                index[stem] = path
    return index


def class_counts(split, trials, source):
    """``{"bonafide": n, "spoof": m}``; refuses a split missing either class.

    Example
    -------
    >>> class_counts("dev", [Trial("a", "spoof", "fake", "-")], "dev/")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: SceneFake split 'dev' (dev/) has only spoof trials (bonafide=0, spoof=1); every split needs both
    real and fake audio
    """
    counts = {"bonafide": 0, "spoof": 0}
    counts.update({label: n for (label,), n in count_by(trials, "label").items()})
    empty = [label for label, n in counts.items() if n == 0]
    if empty:
        present = "no" if len(empty) == 2 else f"only {({'bonafide', 'spoof'} - set(empty)).pop()}"
        raise ValueError(
            f"SceneFake split {split!r} ({source}) has {present} trials "
            f"(bonafide={counts['bonafide']}, spoof={counts['spoof']}); "
            "every split needs both real and fake audio"
        )
    return counts


def prepare_scenefake(data_folder, save_folder, test_splits=("eval", "test"), skip_missing=False):
    """Validates SceneFake and writes one manifest CSV per split present.

    Arguments
    ---------
    data_folder : str
        Folder holding either form (or a ``SceneFake`` folder that does).
    save_folder : str
        Where ``<split>.csv`` are written.
    test_splits : sequence of str
        Test split names to look for (folders or label lists); those present
        are prepared.
    skip_missing : bool
        Flat form: list and skip label-list entries without audio instead of
        failing. Unreadable or wrongly sampled files always fail.

    Returns
    -------
    dict
        Split -> ``{"bonafide": n, "spoof": m}`` for every prepared split.

    Example
    -------
    >>> prepare_scenefake("/no/such/folder", "out")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    FileNotFoundError: no SceneFake data in '/no/such/folder': expected train/{real,fake}/ (folder form) or wav/
    with label lists (flat form)
    """
    root = scenefake_root(data_folder)
    layout = detect_layout(root)
    sources = discover_splits(root, layout, list(test_splits))
    outputs = {split: os.path.join(save_folder, f"{split}.csv") for split in sources}
    options_file = os.path.join(save_folder, OPTIONS_FILE)
    options = {
        "data_folder": os.path.abspath(root),
        "layout": layout,
        "splits": list(sources),
        "skip_missing": skip_missing,
    }
    if skip(list(outputs.values()), options_file, options):
        logger.info("SceneFake manifests already prepared in %s", save_folder)
        return {split: manifest_counts(path) for split, path in outputs.items()}
    os.makedirs(save_folder, exist_ok=True)

    counts, nested = {}, {}
    for split, source in sources.items():
        trials = load_split(root, layout, split, source, save_folder, skip_missing)
        counts[split] = class_counts(split, trials, source)
        if layout == "folder":
            nested.update(nested_folder_counts(split, trials))
        write_manifest(outputs[split], trials)
    if nested:
        # One warning for the whole tree: a layout variant, accepted.
        logger.warning(
            "SceneFake: %d files sit in subfolders of their class folders (read, labelled by the "
            "class folder): %s", sum(nested.values()),
            ", ".join(f"{folder}/ {n}" for folder, n in sorted(nested.items())),
        )
    logger.info(
        "SceneFake (%s form, %s): %s", layout, root,
        "; ".join(f"{split} bonafide={n['bonafide']} spoof={n['spoof']}" for split, n in counts.items()),
    )
    save_options(options_file, options)
    return counts


def manifest_counts(path):
    """``{"bonafide": n, "spoof": m}`` of a written manifest."""
    counts = {"bonafide": 0, "spoof": 0}
    for row in read_manifest(path):
        counts[row["label"]] += 1
    return counts
