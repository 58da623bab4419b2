"""Scoring audio with a trained countermeasure, outside the training script.

``SpoofDetector`` rebuilds the model from a recipe's output folder (its
``hyperparams.yaml`` and the best checkpoint under ``save/``) or from any
hparams file plus a checkpoint, in the manner of ``speechbrain.inference``.
The SSL encoder is loaded from its ``ssl_source`` (hub id or local folder),
never from the checkpoints, which with a frozen SSL hold only the fusion and
the head.

Scores are bona fide logits (higher = more bona fide), exactly what the
recipe writes to ``scores/<set>.txt``. Without windowing, every file is
cropped as the recipe crops its evaluation sets (``eval_crop`` and
``max_samples``), so the scores of the recipe's own files are identical.
With a window, long audio is scored window by window and the window scores
are aggregated (mean, or min to flag any spoofed stretch).

Model folders are data: ``from_output_folder`` reads the plain values of a
run's ``hyperparams.yaml`` without running any of its tags, and
``from_pretrained`` loads a release folder (``python -m lobes.release``) or
hub id from JSON and safetensors files. ``from_hparams`` loads a HyperPyYAML
file, which is code: give it only a recipe YAML you wrote or trust.

With a calibration (``calibration.json`` of the run or release), each result
also carries the calibrated LLR and the posterior probability of bona fide
at the detector's prior (``lobes.inference.outputs``).

Usage (tests/integration/test_inference.py runs all of this on a tiny trained model)::

    from lobes.inference.detector import SpoofDetector

    detector = SpoofDetector.from_output_folder("results/ASVspoof2019/ffn/N6/seed1")
    detector.score_file("speech.flac").score        # one float, the bona fide logit
    result = detector.score_file("long.wav", window=4.0, hop=2.0, aggregation="min")
    result.window_scores, result.window_starts, result.score
    detector.score_files(paths, batch_size=16)      # one DetectionResult per path
"""

import logging
import random
import sys
import warnings
from functools import partial

import numpy as np
import soundfile as sf  # noqa: F401  (doctests write files with it)
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.data_utils import batch_pad_right
from tqdm import tqdm

from lobes.dataio.dataset import SAMPLE_RATE, crop_or_tile
from lobes.inference import streaming
from lobes.inference.checkpoints import holds_branch_modules, load_checkpoint
from lobes.inference.fastpaths import build_scorer
from lobes.inference.outputs import CalibratedOutputs
from lobes.inference.release_loader import load_release
from lobes.inference.run_loader import load_run_folder
from lobes.inference.scoring import DetectionResult, aggregate, read_audio, window_starts
from lobes.models.assembly import BranchSSL
from lobes.models.heads.frame import FrameHead, UtteranceFrameHead
from lobes.utils.choices import DEFAULT_CROP, DEFAULT_MAX_SAMPLES, DEFAULT_SELECTION_METRIC

logger = logging.getLogger(__name__)

# Objects of a recipe's YAML that only training needs; ``None`` keeps them
# from being built (a Checkpointer would create its folder wherever the
# YAML says) and keeps the YAML's seed from reseeding the caller's RNGs.
TRAINING_ONLY_OVERRIDES = {"checkpointer": None, "train_logger": None, "__set_seed": None}


def _load_hparams(hparams_file, overrides):
    """Loads a HyperPyYAML file without touching the caller's RNG state."""
    states = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
    try:
        with open(hparams_file, encoding="utf-8") as fin:
            return load_hyperpyyaml(fin, overrides, overrides_must_match=False)
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])


class ScoringGraph(torch.nn.Module):
    """SSL, fusion and head as one module mapping waveforms to bona fide logits.

    ``forward(wavs, wav_lens=None)``: (B, S) waveforms and relative lengths
    (all 1 when omitted) -> (B,) bona fide logits.
    """

    def __init__(self, ssl, head):
        super().__init__()
        self.ssl, self.head = ssl, head

    def forward(self, wavs, wav_lens=None):
        """Waveforms (B, samples) and relative lengths -> bona fide logits (B,)."""
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0], device=wavs.device)
        feats, feat_lens = self.ssl(wavs, wav_lens)
        logits = self.head(feats, feat_lens)
        if logits.dim() != 2:  # e.g. a frame head's (B, T, 2): [:, 1] would be frame 1's pair
            raise ValueError(
                f"{type(self.head).__name__} gives outputs of shape {tuple(logits.shape)}, not "
                "(batch, 2) utterance logits (a frame head scores utterances as UtteranceFrameHead)"
            )
        return logits[:, 1]


class SpoofDetector(Pretrained):
    """A trained SSL + head countermeasure that scores waveforms and files.

    Build it with ``from_output_folder`` or ``from_hparams``.

    Arguments
    ---------
    modules : dict
        ``ssl`` (a ``LayerwiseSSL``) and ``head``, already loaded.
    hparams : dict
        The recipe's hparams; ``eval_crop`` and ``max_samples`` set the crop.
    run_opts : dict, optional
        SpeechBrain run options, e.g. ``{"device": "cuda"}``.
    window : float, optional
        Default window length in seconds; ``None`` scores one crop per file
        as the recipe does.
    hop : float, optional
        Default hop in seconds (half the window when omitted).
    aggregation : str
        Default window aggregation, ``"mean"`` or ``"min"``.
    batch_size : int
        Segments scored per forward.
    precision : str
        ``"fp32"`` (default), ``"bf16"`` (falls back to fp32, with a
        warning, on hardware without native bf16), ``"fp16"`` (GPU only)
        or ``"int8"`` (CPU only); see ``lobes.models.precision``. Only the encoder
        runs in it; fusion and head stay fp32.
    backend : str
        ``"eager"`` (default), ``"compile"`` (``torch.compile``; the first
        batch of each new shape compiles) or ``"onnx"`` (exported to ONNX
        and run by ONNX Runtime; fp32 or int8). See ``lobes.inference.fastpaths``.
    num_workers : int
        DataLoader workers that decode files for ``score_files`` (0: in
        this process).
    """

    MODULES_NEEDED = ["ssl", "head"]
    # Set by the loaders: the dev calibration (lobes.evaluation.calibration.Calibration)
    # and the bona fide prior of posteriors (None: the ASVspoof 5 cost model's).
    calibration = None
    prior = None

    @property
    def outputs(self):
        """``lobes.inference.outputs.CalibratedOutputs``, or None without calibration."""
        if self.calibration is None:
            return None
        return CalibratedOutputs.from_calibration(self.calibration, self.prior)

    def __init__(self, modules, hparams, run_opts=None, window=None, hop=None,
                 aggregation="mean", batch_size=8, precision="fp32", backend="eager",
                 num_workers=0):
        super().__init__(modules=modules, hparams=hparams, run_opts=run_opts, freeze_params=True)
        self.crop_mode = hparams.get("eval_crop", DEFAULT_CROP)
        self.max_samples = int(hparams.get("max_samples", DEFAULT_MAX_SAMPLES))
        self.window, self.hop = window, hop
        self.aggregation = aggregation
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        aggregate([0.0], aggregation)  # fail early on a bad name
        self.requested_precision = precision
        self.scorer = build_scorer(
            ScoringGraph(self.mods.ssl, self.mods.head).eval(), precision, backend,
            self.device, batch_size=self.batch_size,
        )
        self.precision, self.backend = self.scorer.precision, self.scorer.backend

    @classmethod
    def from_hparams(cls, hparams_file, checkpoint, overrides=None, run_opts=None,
                     ssl_source=None, branch=None, **kwargs):
        """Builds the model from a hparams file and loads a checkpoint.

        Arguments
        ---------
        hparams_file : str
            HyperPyYAML defining ``ssl`` and ``head`` (or ``modules``), e.g. a
            recipe's ``hyperparams.yaml``, or its template with ``overrides``
            for ``data_folder`` and the model settings.
        checkpoint : str
            A ``CKPT+*`` folder or a folder of them (best one chosen by the
            recipe's rule: dev ``selection_metric``, then the other metric):
            a run's (``ssl`` and ``head``), or one branch's of a multi-depth
            or branched run (``fusion`` and ``head``), told apart by its files.
        overrides : dict, optional
            HyperPyYAML overrides.
        run_opts : dict, optional
            SpeechBrain run options (``device``, ...).
        ssl_source : str, optional
            Where to load the SSL from instead of the YAML's ``ssl_source``
            (e.g. a local copy of the hub model).
        branch : str, optional
            Score this branch (``N<n>`` or ``<head>/N<n>/seed<s>``) of the
            multi-depth or branched run that ``hparams_file`` describes.
        **kwargs
            ``window``, ``hop``, ``aggregation``, ``batch_size``,
            ``precision``, ``backend``, ``num_workers``.
        """
        overrides = {**TRAINING_ONLY_OVERRIDES, **(overrides or {})}
        if ssl_source is not None:
            overrides["ssl_source"] = str(ssl_source)
            overrides.setdefault("ssl", {})["source"] = str(ssl_source)
        hparams = _load_hparams(hparams_file, overrides)
        modules = dict(hparams.get("modules") or {"ssl": hparams["ssl"], "head": hparams["head"]})
        modules = {name: modules[name] for name in cls.MODULES_NEEDED}
        if branch is not None:
            if branch not in modules["ssl"].fusions:
                raise FileNotFoundError(f"the run in {hparams_file} has no branch {branch}")
            modules = {"ssl": BranchSSL(modules["ssl"], branch), "head": modules["head"][branch]}
        stored = modules
        if branch is not None or holds_branch_modules(checkpoint):
            stored = {"fusion": modules["ssl"].fusion, "head": modules["head"]}
        selected = load_checkpoint(stored, checkpoint, hparams.get("selection_metric", DEFAULT_SELECTION_METRIC))
        logger.info("loaded checkpoint %s (%s)", selected.path, selected.meta)
        if type(modules["head"]) is FrameHead:  # segment.yaml: utterance scores as the recipe pools them
            modules["head"] = UtteranceFrameHead.from_frame_head(
                modules["head"], hparams.get("utterance_pooling", "min"))
        detector = cls(modules, hparams, run_opts=run_opts, **kwargs)
        detector.checkpoint = selected
        return detector

    @classmethod
    def from_output_folder(cls, folder, **kwargs):
        """Loads a recipe output folder: ``hyperparams.yaml`` and the best of ``save/``.

        The YAML is read for plain values only and the modules are built in
        code (``lobes.inference.run_loader``): nothing a model folder names is
        run. Keyword arguments: ``overrides`` (plain values), ``ssl_source``,
        ``run_opts`` and those of the constructor.
        """
        return load_run_folder(cls, folder, **kwargs)

    @classmethod
    def from_pretrained(cls, source, **kwargs):
        """Loads a release folder (``python -m lobes.release``) or a hub id.

        A hub id is fetched with ``huggingface_hub`` (the local cache alone
        under ``HF_HUB_OFFLINE=1``). No SSL checkpoint is needed: a release
        holds its truncated encoder. Keyword arguments: ``run_opts``,
        ``revision``, ``cache_dir`` and those of the constructor.
        """
        return load_release(cls, source, **kwargs)

    def forward(self, wavs, wav_lens=None):
        """Same as ``score_batch``."""
        return self.score_batch(wavs, wav_lens)

    def score_batch(self, wavs, wav_lens=None):
        """Bona fide logits of a batch of 16 kHz waveforms, as they are (no crop).

        Arguments
        ---------
        wavs : torch.Tensor
            (B, S) waveforms at 16 kHz.
        wav_lens : torch.Tensor, optional
            Relative lengths (B,), SpeechBrain style; all 1 when omitted.

        Returns
        -------
        torch.Tensor
            (B,) scores on the CPU.
        """
        if wav_lens is None:
            # The recipe's batches always carry lengths; so do we, so that
            # the encoder sees the same attention mask.
            wav_lens = torch.ones(wavs.shape[0])
        return self.scorer(wavs, wav_lens).float().cpu()

    def export_torchscript(self, path, n_samples=None):
        """Saves a TorchScript trace of the truncated encoder, fusion and head.

        The trace has a fixed input shape, one waveform of ``n_samples``
        samples at 16 kHz (the recipe's ``max_samples`` crop by default):
        ``torch.jit.load(path)(crop[None])`` returns its bona fide logit,
        shape (1,). Crop or window the audio as ``score_waveforms`` does.

        Returns
        -------
        str
            ``path``.
        """
        n_samples = int(n_samples or self.max_samples)  # whole-file models: pass the length to trace
        graph = ScoringGraph(self.mods.ssl, self.mods.head).eval()
        example = torch.zeros(1, n_samples, device=self.device)
        with torch.no_grad(), warnings.catch_warnings():
            # Tracer warnings say that shapes become constants: intended here.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(graph, example, check_trace=False)
        traced.save(str(path))
        return str(path)

    def _segments(self, wav, window, hop):
        """(start sample, segment) pairs of one waveform under the current policy."""
        if window is None:
            # The recipe's evaluation crop; "random" is made deterministic.
            mode = "first" if self.crop_mode == "random" else self.crop_mode
            return [(0, crop_or_tile(wav, self.max_samples, mode))]
        return [
            (start, crop_or_tile(wav[start : start + window], window))
            for start in window_starts(wav.shape[0], window, hop)
        ]

    def _resolve_windows(self, window, hop, aggregation):
        window = self.window if window is None else window
        hop = self.hop if hop is None else hop
        aggregation = aggregation or self.aggregation
        if window is None:
            return None, None, aggregation
        window_samples = int(round(window * SAMPLE_RATE))
        hop_samples = int(round((hop if hop is not None else window / 2) * SAMPLE_RATE))
        return window_samples, hop_samples, aggregation

    def score_waveforms(self, wavs, window=None, hop=None, aggregation=None, batch_size=None):
        """Scores 1-D 16 kHz waveforms; returns one ``DetectionResult`` each.

        Segments of all waveforms are batched together, ``batch_size`` at a
        time. ``window``/``hop`` (seconds) and ``aggregation`` override the
        detector's defaults.
        """
        window, hop, aggregation = self._resolve_windows(window, hop, aggregation)
        batch_size = batch_size or self.batch_size
        spans, starts, segments = [], [], []  # spans: each waveform's slice of segments
        for index, wav in enumerate(wavs):
            if wav.dim() != 1 or wav.shape[0] == 0:
                raise ValueError(f"waveform {index} must be 1-D and non-empty, got {tuple(wav.shape)}")
            first = len(segments)
            for start, segment in self._segments(wav, window, hop):
                starts.append(start)
                segments.append(segment)
            spans.append(slice(first, len(segments)))
        scores = []
        for first in range(0, len(segments), batch_size):
            # Zero padding and relative lengths exactly as SpeechBrain's PaddedBatch.
            batch, lens = batch_pad_right(segments[first : first + batch_size])
            scores += self.score_batch(batch, lens).tolist()
        outputs = self.outputs
        results = []
        for wav, span in zip(wavs, spans):
            score = aggregate(scores[span], aggregation)
            calibrated = {}
            if outputs is not None:  # an increasing affine map: it commutes with mean and min
                llr = outputs.llr(score)
                calibrated = dict(llr=llr, posterior=outputs.posterior(llr),
                                  window_llrs=tuple(outputs.llr(s) for s in scores[span]))
            results.append(DetectionResult(
                score=score,
                window_scores=tuple(scores[span]),
                window_starts=tuple(start / SAMPLE_RATE for start in starts[span]),
                duration=wav.shape[0] / SAMPLE_RATE,
                **calibrated,
            ))
        return results

    def score_file(self, path, window=None, hop=None, aggregation=None):
        """Scores one audio file (any rate, mono or multi-channel).

        ``window``/``hop`` in seconds and ``aggregation`` override the
        detector's defaults; see the module docstring for an example.
        """
        return self.score_files([path], window=window, hop=hop, aggregation=aggregation)[0]

    def score_files(self, paths, window=None, hop=None, aggregation=None, batch_size=None,
                    num_workers=None, progress=False, errors=None):
        """Scores audio files, batching their segments; one result per path.

        Files are decoded (and resampled) in ``num_workers`` DataLoader
        workers (the detector's ``num_workers`` by default), ``batch_size``
        files at a time, while the model scores the previous batch.

        An unreadable or empty file raises with its name, unless ``errors``
        is a dict: then its message is stored there under its path, its
        result is ``None`` and the other files are still scored (as the
        ``lobes.inference.cli`` CLI does). ``progress=True`` shows a tqdm bar.
        """
        paths = [str(path) for path in paths]  # AudioFiles yields them as str
        batch_size = batch_size or self.batch_size
        num_workers = self.num_workers if num_workers is None else int(num_workers)
        results = {}
        # Bounded memory on long files (lobes.inference.streaming): without
        # windows only the scored crop is decoded; with windows, files too
        # long to decode whole (loader gives None) are scored block by block.
        windowed = self._resolve_windows(window, hop, aggregation)[0] is not None
        loader = streaming.read_unless_long if windowed else (
            read_audio if self.crop_mode == "full"
            else partial(streaming.read_scored_crop, n_samples=self.max_samples, mode=self.crop_mode))
        with tqdm(total=len(paths), unit="file", disable=not progress, file=sys.stderr) as bar:
            for decoded in decoded_batches(paths, batch_size, num_workers, loader):
                readable = []
                for path, wav, error in decoded:
                    if error is None and wav is None:
                        try:
                            results[path] = streaming.score_file_windows(
                                self, path, window, hop, aggregation, batch_size)
                        except (RuntimeError, ValueError) as err:
                            error = err
                        if error is None:
                            continue
                    if error is None:
                        readable.append((path, wav))
                    elif errors is None:
                        raise error
                    else:
                        errors[path] = str(error)
                if readable:
                    scored = self.score_waveforms(
                        [wav for _, wav in readable], window, hop, aggregation, batch_size
                    )
                    if not windowed:  # the crop's length is not the file's
                        scored = [streaming.with_file_duration(r, p) for (p, _), r in zip(readable, scored)]
                    results.update(zip((path for path, _ in readable), scored))
                bar.update(len(decoded))
        return [results.get(path) for path in paths]


class AudioFiles(torch.utils.data.Dataset):
    """Audio files decoded by ``read_audio``; item: ``(path, waveform, error)``.

    A file that cannot be read gives ``(path, None, exception)`` instead of
    raising inside a DataLoader worker, so that one bad file neither stops
    the others nor loses its name.
    """

    def __init__(self, paths, loader=None):
        self.paths = [str(p) for p in paths]
        self.loader = loader or read_audio  # or one of lobes.inference.streaming's

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        path = self.paths[index]
        try:
            return path, self.loader(path), None
        except (RuntimeError, ValueError) as err:
            return path, None, err


def decoded_batches(paths, batch_size, num_workers=0, loader=None):
    """Lists of ``batch_size`` decoded ``AudioFiles`` items, in order.

    With ``num_workers > 0`` the files are decoded in worker processes
    ahead of the consumer (torch's DataLoader prefetching), so decoding
    overlaps scoring.

    Example
    -------
    >>> path = getfixture("tmp_path") / "a.wav"
    >>> sf.write(path, np.zeros(800), 16000)
    >>> [[(p[-5:], w.shape, e) for p, w, e in batch] for batch in decoded_batches([path], 4)]
    [[('a.wav', torch.Size([800]), None)]]
    """
    loader = torch.utils.data.DataLoader(
        AudioFiles(paths, loader), batch_size=batch_size, num_workers=num_workers,
        collate_fn=list, persistent_workers=False,
    )
    return iter(loader)
