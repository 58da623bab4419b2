"""Data pipeline pieces shared by the recipes: audio, crops, labels, datasets."""

import logging
import os

import soundfile as sf
import speechbrain as sb
import torch
import torchaudio

from lobes.augment import build_augmenter
from lobes.dataio.audio_checks import NonFiniteAudioError, check_finite, scan_files
from lobes.utils.choices import CROP_MODES
from lobes.utils.files import atomic_write_text

# Fixed, never learned from data order: logits and targets are [spoof, bonafide].
LABELS = {"spoof": 0, "bonafide": 1}
SAMPLE_RATE = 16000
logger = logging.getLogger(__name__)


def load_audio(path, sample_rate=SAMPLE_RATE, resample=False):
    """Reads a mono waveform as a float tensor, checking the sample rate.

    Multi-channel files are mixed down. Errors name the file; NaN or
    infinite samples are one (``NonFiniteAudioError``). Another sample rate
    is an error (datasets are 16 kHz), or, with ``resample=True`` (scoring
    any file), resampled with ``torchaudio.functional.resample``.

    Example
    -------
    >>> import numpy as np
    >>> path = getfixture("tmp_path") / "a.wav"
    >>> sf.write(path, np.zeros(1600), 16000)
    >>> load_audio(path).shape
    torch.Size([1600])
    """
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for bad files
        raise RuntimeError(f"cannot read audio file {path}: {err}") from err
    if file_rate != sample_rate and not resample:
        raise ValueError(f"{path} is sampled at {file_rate} Hz; expected {sample_rate} Hz")
    if data.shape[0] == 0:
        raise ValueError(f"{path} holds no samples")
    check_finite(data, path)  # a NaN file would train or score NaN
    wav = torch.from_numpy(data.mean(axis=1))
    if file_rate != sample_rate:
        wav = torchaudio.functional.resample(wav, file_rate, sample_rate)
    return wav


def crop_or_tile(wav, n_samples, mode="first", generator=None):
    """Cuts ``wav`` to ``n_samples``, tiling short signals (the paper's padding).

    Arguments
    ---------
    wav : torch.Tensor
        1-D waveform.
    n_samples : int
        Target length (64,600 in the paper, about 4.04 s at 16 kHz).
    mode : str
        ``"first"``: the first ``n_samples``; ``"random"``: a random window;
        ``"full"``: the whole signal, untouched.
    generator : torch.Generator, optional
        Source of randomness for ``"random"``.

    Example
    -------
    >>> crop_or_tile(torch.arange(3.0), 7).tolist()
    [0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0]
    >>> crop_or_tile(torch.arange(10.0), 4).tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    if mode not in CROP_MODES:
        raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}")
    if mode == "full":
        return wav
    length = wav.shape[0]
    if length < n_samples:
        return wav.repeat(n_samples // length + 1)[:n_samples]
    start = 0
    if mode == "random" and length > n_samples:
        start = int(torch.randint(0, length - n_samples + 1, (1,), generator=generator))
    return wav[start : start + n_samples]


def label_to_index(label, utt_id=""):
    """Maps ``"bonafide"``/``"spoof"`` to 1/0; anything else is an error."""
    try:
        return LABELS[label]
    except KeyError:
        raise ValueError(
            f"utterance {utt_id!r}: label {label!r} is not one of {sorted(LABELS)}"
        ) from None


def make_dataset(manifest, crop_mode, n_samples, sample_rate=SAMPLE_RATE, augmenter=None):
    """A ``DynamicItemDataset`` over a manifest CSV with the shared pipelines.

    The manifest needs the columns ``ID``, ``wav``, ``label``, ``attack``.
    Output keys: ``id``, ``sig``, ``label`` (tensor), ``key``, ``attack``.

    Arguments
    ---------
    manifest : str
        Path of the CSV written by a prepare script.
    crop_mode : str
        See ``crop_or_tile``.
    n_samples : int
        Crop length in samples.
    sample_rate : int
        Expected sample rate of every file.
    augmenter : lobes.augment.UtteranceAugmenter, optional
        Applied to every utterance as it is loaded (so in the DataLoader
        workers), before or after the crop as its ``position`` says.
    """
    dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path=manifest)
    if augmenter is not None:
        check_augmentable(dataset, manifest, augmenter, crop_mode, n_samples, sample_rate)

    # Manifest line of each trial, for errors (header is line 1).
    line_of = {utt_id: line for line, utt_id in enumerate(dataset.data_ids, 2)}

    def where(utt_id):
        """The trial's protocol line where the manifest has one (``origin``;
        older manifests have none), and its manifest line."""
        origin = dataset.data[utt_id].get("origin") or ""
        at = f"{manifest}:{line_of[utt_id]}"
        return f"{origin} (utterance {utt_id}, {at})" if origin else f"{at} (utterance {utt_id})"

    @sb.utils.data_pipeline.takes("id", "wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(utt_id, wav):
        try:
            sig = load_audio(wav, sample_rate)
        except NonFiniteAudioError as err:
            raise NonFiniteAudioError(
                f"{where(utt_id)}: {err}; "
                "set nonfinite_audio: skip to leave such files out"
            ) from None
        if augmenter is not None and augmenter.position == "before_crop":
            sig = augmenter(sig, source=wav)
        sig = crop_or_tile(sig, n_samples, crop_mode)
        if augmenter is not None and augmenter.position == "after_crop":
            sig = augmenter(sig, source=wav)
        return sig

    @sb.utils.data_pipeline.takes("id", "label")
    @sb.utils.data_pipeline.provides("label_index", "key")
    def label_pipeline(utt_id, label):
        yield label_to_index(label, utt_id)  # collated to a (B,) tensor
        yield label

    sb.dataio.dataset.add_dynamic_item([dataset], audio_pipeline)
    sb.dataio.dataset.add_dynamic_item([dataset], label_pipeline)
    sb.dataio.dataset.set_output_keys([dataset], ["id", "sig", "label_index", "key", "attack"])
    return dataset


def check_augmentable(dataset, manifest, augmenter, crop_mode, n_samples, sample_rate):
    """Start-up check that every clip the augmenter will see is long enough
    for it (RawBoost's notch filters), from the manifest's durations."""
    shortest = augmenter.min_samples
    if shortest <= 1:
        return
    if augmenter.position == "after_crop" and crop_mode != "full":
        if n_samples < shortest:
            raise ValueError(
                f"max_samples={n_samples} is shorter than augment.rawboost's longest notch "
                f"filter ({shortest} taps): lower rawboost nBands/maxCoeff or crop longer"
            )
        return
    for utt_id in dataset.data_ids:
        row = dataset.data[utt_id]
        if "duration" in row and round(float(row["duration"]) * sample_rate) < shortest:
            raise ValueError(
                f"{manifest}: utterance {utt_id} ({row['wav']}, {row['duration']} s) is shorter "
                f"than augment.rawboost's longest notch filter ({shortest} taps); use "
                f"augment.position: after_crop or lower rawboost nBands/maxCoeff"
            )


def manifest_paths(hparams, splits):
    """``{name: <manifest_folder>/<split>.csv}`` for a list of split names or
    a mapping of dataset name -> split name."""
    if not isinstance(splits, dict):
        splits = {split: split for split in splits}
    folder = hparams["manifest_folder"]
    return {name: os.path.join(folder, f"{split}.csv") for name, split in splits.items()}


def make_datasets(hparams, splits=("train", "dev", "eval")):
    """Datasets from the prepared manifests of ``splits`` (see ``manifest_paths``).

    The ``train`` dataset uses ``hparams["train_crop"]``; the others use
    ``hparams["eval_crop"]``. Crop length is ``hparams["max_samples"]``.
    The YAML's ``augment:`` block (``lobes.augment``), checked here, acts on
    ``train``, and on ``dev`` when it says ``dev: True``; never on test sets.
    """
    augmenter = build_augmenter(hparams.get("augment"))
    augmented = {"train", "dev"} if augmenter is not None and augmenter.dev else {"train"}
    if augmenter is not None:
        present = [name for name in manifest_paths(hparams, splits) if name in augmented]
        logger.info("augmenting %s: %s", ", ".join(present), augmenter.describe())
    datasets = {}
    for name, manifest in manifest_paths(hparams, splits).items():
        mode = hparams["train_crop"] if name == "train" else hparams["eval_crop"]
        datasets[name] = make_dataset(
            manifest, mode, hparams["max_samples"],
            augmenter=augmenter if name in augmented else None,
        )
        if hparams.get("nonfinite_audio", "error") == "skip":
            datasets[name] = without_nonfinite_audio(datasets[name], manifest, name)
    return datasets


def without_nonfinite_audio(dataset, manifest, name):
    """``dataset`` less the trials whose audio holds NaN or inf samples
    (recipe option ``nonfinite_audio: skip``), listed in
    ``<manifest>.nonfinite.txt`` and counted in a warning.

    Every file is decoded in full once, in parallel workers; the verdicts
    are cached beside the manifest (``<manifest>.scan.json``), so a rerun
    decodes only new or changed files.
    """
    wavs = {utt_id: dataset.data[utt_id]["wav"] for utt_id in dataset.data_ids}
    refused = scan_files(wavs.values(), mode="full", cache_file=manifest + ".scan.json",
                         desc=f"checking {name} audio for NaN/inf")
    skipped = [utt_id for utt_id, wav in wavs.items() if wav in refused]
    listing = manifest + ".nonfinite.txt"
    atomic_write_text(listing, "".join(f"{u}\t{refused[wavs[u]]}\n" for u in skipped))
    if not skipped:
        return dataset
    logger.warning("%s: %d of %d files hold NaN/inf samples or cannot be decoded and are "
                   "skipped (nonfinite_audio: skip; listed in %s)",
                   name, len(skipped), len(wavs), listing)
    kept = [utt_id for utt_id in dataset.data_ids if utt_id not in set(skipped)]
    if not kept:
        raise ValueError(f"{manifest}: no file left after skipping non-finite audio")
    return sb.dataio.dataset.FilteredSortedDynamicItemDataset(dataset, kept)

