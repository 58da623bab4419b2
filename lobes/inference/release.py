"""Self-contained release folders: a trained countermeasure anyone can load safely.

``python -m lobes.release RUN --out DIR`` turns a run folder (or one branch
folder of a multi-depth or branched run) into a folder that needs nothing
else, and holds no code:

    config.json                  plain JSON: format version, SSL type and depth,
                                 fusion, head, crop, sample rate, precision hints
    encoder/config.json          the SSL config cut to N layers (transformers)
    encoder/preprocessor_config.json   its feature-extractor config
    encoder/model.safetensors    CNN, positional convolution, layers 1..N only
    fusion_head.safetensors      layer-sum weights and the head
    calibration.json             affine map to LLRs, fitted on the run's dev set
    golden.json                  expected raw scores of clips generated in code
    README.md                    model card (Hugging Face metadata)

``SpoofDetector.from_pretrained(SOURCE)`` (``lobes.inference.release_loader``)
loads a release folder or hub id; every file is checked before any audio is read.
``python -m lobes.release --verify SOURCE`` regenerates the golden clips and
compares their scores.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import Wav2Vec2FeatureExtractor

from lobes.dataio.dataset import SAMPLE_RATE
from lobes.inference.detector import SpoofDetector
from lobes.inference.logs import quiet_libraries
from lobes.inference.model_card import model_card, score_name
from lobes.inference.release_loader import (
    CONFIG_FILE,
    ENCODER_DIR,
    ENCODER_WEIGHTS,
    FORMAT,
    FORMAT_VERSION,
    FUSION_HEAD_WEIGHTS,
    GOLDEN_FILE,
    GOLDEN_TOLERANCE,
    README_FILE,
    WEIGHT_FILES,
    ReleaseError,
    file_sha256,
    load_release,
    read_json_file,
)
from lobes.models.ssl import SSL_CLASSES
from lobes.utils.files import atomic_write_text
from lobes.utils.run_folder import CALIBRATION_FILE, DEV_SET, read_results

DTYPES = {"float32": torch.float32, "float16": torch.float16}
# Golden clips: (name, kind, seconds, seed); made by ``golden_clip`` in code,
# so no dataset audio is ever copied into a release.
GOLDEN_CLIPS = (
    ("chirp_1s", "chirp", 1.0, 0),
    ("harmonics_noise_2s", "harmonics_noise", 2.0, 1),
    ("noise_bursts_0.6s", "noise_bursts", 0.6, 2),
)


def golden_clip(kind, seconds, seed):
    """A deterministic test waveform (float32, 16 kHz, peak below 1).

    Uniform draws of numpy's PCG64 bit generator, which numpy keeps stable
    across versions, and closed-form tones.

    Example
    -------
    >>> clip = golden_clip("chirp", 0.5, 0)
    >>> clip.shape, clip.dtype, bool(np.abs(clip).max() < 1)
    ((8000,), dtype('float32'), True)
    >>> bool(np.array_equal(golden_clip("noise_bursts", 0.2, 3), golden_clip("noise_bursts", 0.2, 3)))
    True
    """
    n = int(round(seconds * SAMPLE_RATE))
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    noise = np.random.Generator(np.random.PCG64(seed)).random(n) * 2.0 - 1.0
    if kind == "chirp":  # 100 Hz -> 4 kHz linear sweep over the clip
        rate = (4000.0 - 100.0) / max(seconds, 1e-9)
        wav = 0.3 * np.sin(2 * np.pi * (100.0 * t + 0.5 * rate * t**2)) + 0.01 * noise
    elif kind == "harmonics_noise":  # a 180 Hz voice-like harmonic series, 3 Hz tremolo
        wav = sum(np.sin(2 * np.pi * 180.0 * k * t) / k for k in range(1, 9))
        wav = 0.15 * wav * (0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t)) + 0.05 * noise
    elif kind == "noise_bursts":  # 100 ms on, 100 ms off
        wav = 0.4 * noise * (np.floor(t * 10) % 2 == 0)
    else:
        raise ValueError(f"unknown golden clip kind {kind!r}")
    return wav.astype(np.float32)


def _golden_waveforms(clips):
    return [torch.from_numpy(golden_clip(c["kind"], c["seconds"], c["seed"])) for c in clips]


# ----------------------------------------------------------------- writing


def _refuse_non_empty(out, force, source=None):
    if source is not None:
        real_out, real_source = os.path.realpath(out), os.path.realpath(str(source))
        if os.path.commonpath([real_out, real_source]) in (real_out, real_source):
            raise FileExistsError(
                f"--out {out} is, holds or lies inside the run folder {source}: the release would "
                "replace it; give a folder outside the run"
            )
    if os.path.exists(out) and not os.path.isdir(out):
        raise FileExistsError(f"--out {out} exists and is not a folder")
    if os.path.isdir(out) and os.listdir(out) and not force:
        raise FileExistsError(f"--out {out} is not empty: give --force to replace its contents")


def _float_state(module, dtype):
    """``module``'s state with floating tensors in ``dtype``, contiguous (safetensors)."""
    return {
        key: (value.detach().to(dtype) if value.is_floating_point() else value.detach()).contiguous().cpu()
        for key, value in module.state_dict().items()
    }


def write_encoder(encoder, folder, dtype=torch.float32):
    """Writes a ``TruncatedSSLEncoder`` (or any HF wav2vec2-family model with
    its config as ``encoder.model``/``encoder.config``) under ``folder``:
    ``config.json``, ``preprocessor_config.json`` and ``model.safetensors``.
    Returns the weight file's path."""
    os.makedirs(folder, exist_ok=True)
    config = encoder.config.to_dict()
    config.pop("auto_map", None)  # a release names no code to load
    atomic_write_text(os.path.join(folder, "config.json"), json.dumps(config, indent=2, sort_keys=True) + "\n")
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0,
        do_normalize=bool(getattr(encoder, "normalize_waveform", False)),
        return_attention_mask=bool(getattr(encoder, "use_attention_mask", True)),
    ).to_json_file(os.path.join(folder, "preprocessor_config.json"))
    path = os.path.join(folder, "model.safetensors")
    save_file(_float_state(encoder.model, dtype), path, metadata={"format": "pt"})
    return path


def write_fusion_head(fusion, head, path):
    """Fusion and head weights (fp32 always: they are small, and BatchNorm
    statistics lose too much in fp16) as one safetensors file."""
    state = {f"fusion.{k}": v for k, v in _float_state(fusion, torch.float32).items()}
    state.update({f"head.{k}": v for k, v in _float_state(head, torch.float32).items()})
    save_file(state, path, metadata={"format": "pt"})
    return path


def parameter_count(module):
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def full_encoder_parameters(encoder_config, full_depth):
    """Parameters of the SSL at its full depth, counted on a model built on
    the meta device (no memory, no download)."""
    config_class, model_class = SSL_CLASSES[encoder_config.model_type]
    config = config_class(**{**encoder_config.to_dict(), "num_hidden_layers": full_depth})
    with torch.device("meta"):
        return parameter_count(model_class(config))


def release_config(detector, dtype_name):
    """The plain ``config.json`` of a release of ``detector`` (a run-folder detector).

    ``head.class`` records where the head's class lives, for the reader: a
    release of a head of the user's own loads only with that class passed
    in code (``head_classes``), never by importing what the config names."""
    spec, ssl = detector.model_spec, detector.mods.ssl
    head_class = type(detector.mods.head)
    encoder = ssl.encoder
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": "audio deepfake (spoofing) detection: bona fide vs spoof speech",
        "score": f"{score_name(spec.head_type)} (higher = more bona fide); calibration.json maps it to an LLR",
        "model_type": encoder.config.model_type,
        "ssl_source": spec.ssl_source,
        "n_layers": encoder.n_layers,
        "full_depth": encoder.full_depth,
        "hidden_size": encoder.hidden_size,
        "include_cnn_output": encoder.include_cnn_output,
        "normalize_waveform": encoder.normalize_waveform,
        "use_attention_mask": encoder.use_attention_mask,
        "fusion": {"n_layers": ssl.fusion.n_layers, "norm": ssl.fusion.norm_type},
        "head": {"type": spec.head_type, "options": _head_options(spec, head_class),
                 "class": f"{head_class.__module__}.{head_class.__qualname__}"},
        "sample_rate": SAMPLE_RATE,
        "crop": {"max_samples": spec.max_samples, "eval_crop": spec.eval_crop},
        "dtype": dtype_name,
        "precision_hints": {
            "stored": f"encoder weights in {dtype_name}; fusion and head in float32",
            "compute": "loaded as float32; SpoofDetector(precision=...) runs the encoder "
                       "in bf16 (native bf16 hardware), fp16 (GPU) or int8 (CPU)",
            "fusion_and_head": "always float32",
        },
        "files": {"encoder": ENCODER_WEIGHTS, "fusion_head": FUSION_HEAD_WEIGHTS,
                  "calibration": CALIBRATION_FILE, "golden": GOLDEN_FILE},
    }


def _head_options(spec, head_class):
    """The head's options as its class receives them (``build_head``'s rule)."""
    import inspect

    if spec.own_head_type in (None, spec.head_type):
        return dict(spec.head_options)
    accepted = inspect.signature(head_class).parameters
    return {k: v for k, v in spec.head_options.items() if k in accepted}


def write_release(run_folder, out, dtype="float32", force=False, ssl_source=None, head_classes=()):
    """Writes the release of ``run_folder`` to ``out``; returns a summary dict.

    ``head_classes``: head classes of the user's own that the run trained.

    The release is written to a temporary folder beside ``out``, loaded back
    from there to compute its golden scores (so they are the scores of the
    files as written), and moved into place last.
    """
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out = os.path.normpath(str(out))
    _refuse_non_empty(out, force, run_folder)
    detector = SpoofDetector.from_output_folder(
        run_folder, ssl_source=ssl_source, run_opts={"device": "cpu"}, head_classes=head_classes
    )
    if detector.calibration is None:
        raise FileNotFoundError(
            f"{os.path.join(str(run_folder), CALIBRATION_FILE)} is missing: a release carries the "
            f"calibration fitted on dev; score the run's {DEV_SET} set first (rerun its recipe)"
        )
    staging = f"{out}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        ssl = detector.mods.ssl
        write_encoder(ssl.encoder, os.path.join(staging, ENCODER_DIR), DTYPES[dtype])
        write_fusion_head(ssl.fusion, detector.mods.head, os.path.join(staging, FUSION_HEAD_WEIGHTS))
        config = release_config(detector, dtype)
        config["sha256"] = {name: file_sha256(os.path.join(staging, name)) for name in WEIGHT_FILES}
        _write_json(os.path.join(staging, CONFIG_FILE), config)
        calibration = detector.calibration
        _write_json(os.path.join(staging, CALIBRATION_FILE), {
            "a": calibration.a, "b": calibration.b, "prior": calibration.prior,
            "fitted_on": f"the {DEV_SET} scores of the run (scores/{DEV_SET}.txt)",
            "maps": "raw bona fide logit s -> natural-log LLR a * s + b",
        })
        clips = [dict(name=n, kind=k, seconds=s, seed=seed) for n, k, s, seed in GOLDEN_CLIPS]
        waveforms = _golden_waveforms(clips)
        run_scores = [r.score for r in detector.score_waveforms(waveforms)]
        released = load_release(SpoofDetector, staging, check_golden=False, head_classes=head_classes)
        scores = [r.score for r in released.score_waveforms(waveforms)]
        _write_json(os.path.join(staging, GOLDEN_FILE), {
            "tolerance": GOLDEN_TOLERANCE,
            "note": "clips are generated by lobes.inference.release.golden_clip; scores are raw "
                    "bona fide logits of this release, loaded as float32 on CPU",
            "clips": [dict(c, score=s) for c, s in zip(clips, scores)],
        })
        summary = _summary(detector, released, staging, run_scores, scores)
        results = read_results(str(run_folder), missing_ok=True)
        atomic_write_text(os.path.join(staging, README_FILE), model_card(config, calibration, results, summary))
        _make_readable(staging)
        if os.path.isdir(out):
            shutil.rmtree(out)  # only reached with --force (or an empty folder)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _make_readable(folder):
    """Files readable by all, as shared files are (atomic writes create them 0600)."""
    for root, _, names in os.walk(folder):
        for name in names:
            os.chmod(os.path.join(root, name), 0o644)


def _write_json(path, value):
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def _summary(run_detector, released, folder, run_scores, scores):
    """Sizes, parameter counts and the run-vs-release score difference."""
    encoder = run_detector.mods.ssl.encoder
    encoder_params = parameter_count(encoder.model)
    scorer_params = parameter_count(run_detector.mods.ssl.fusion) + parameter_count(run_detector.mods.head)
    full_params = full_encoder_parameters(encoder.config, encoder.full_depth) + scorer_params
    sizes = {name: os.path.getsize(os.path.join(folder, name)) for name in (ENCODER_WEIGHTS, FUSION_HEAD_WEIGHTS)}
    return {
        "parameters": encoder_params + scorer_params,
        "full_model_parameters": full_params,
        "weight_bytes": sum(sizes.values()),
        # The full model's weights in fp32, from its parameter count.
        "full_model_fp32_bytes": 4 * full_params,
        "file_bytes": sizes,
        "max_abs_difference_to_run": float(np.max(np.abs(np.subtract(run_scores, scores)))),
        "golden_scores": scores,
    }


def verify_release(source, tolerance=GOLDEN_TOLERANCE, **load_kwargs):
    """Recomputes a release's golden scores; returns ``(rows, failures)``.

    Each row is ``(clip name, expected, recomputed, |difference|)``; a
    failure is the message of a row beyond ``tolerance``.
    """
    detector = SpoofDetector.from_pretrained(source, run_opts={"device": "cpu"}, **load_kwargs)
    golden_path = os.path.join(detector.release_folder, GOLDEN_FILE)
    golden = read_json_file(golden_path, "the golden scores")
    try:
        clips = [dict(name=str(c["name"]), kind=str(c["kind"]), seconds=float(c["seconds"]),
                      seed=int(c["seed"]), score=float(c["score"])) for c in golden["clips"]]
    except (KeyError, TypeError, ValueError) as err:
        raise ReleaseError(f"{golden_path} lacks a field or has a bad value: {err!r}") from err
    if not clips:
        raise ReleaseError(f"{golden_path} lists no clips")
    results = detector.score_waveforms(_golden_waveforms(clips))
    rows, failures = [], []
    for clip, result in zip(clips, results):
        difference = abs(result.score - clip["score"])
        rows.append((clip["name"], clip["score"], result.score, difference))
        if not difference <= tolerance:  # also catches NaN
            failures.append(
                f"golden clip {clip['name']}: expected {clip['score']:.6f}, got {result.score:.6f} "
                f"(difference {difference:.3g} > tolerance {tolerance:g})"
            )
    return rows, failures


# ----------------------------------------------------------------- command line


def parse_args(argv=None):
    """The options of ``python -m lobes.release``."""
    parser = argparse.ArgumentParser(
        prog="python -m lobes.release",
        description="Write a self-contained release folder of a trained run, or verify one.",
    )
    parser.add_argument("source", help="run folder (or branch folder) to release; with --verify, "
                                       "a release folder or hub id")
    parser.add_argument("--out", help="release folder to write")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32",
                        help="storage type of the encoder weights (fusion and head stay float32)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--ssl-source", help="load the run's SSL from here instead of its recorded source")
    parser.add_argument("--verify", action="store_true",
                        help="recompute the golden scores of SOURCE and compare")
    parser.add_argument("--tolerance", type=float, default=GOLDEN_TOLERANCE,
                        help=f"largest |difference| of a golden score (default {GOLDEN_TOLERANCE:g})")
    args = parser.parse_args(argv)
    if not args.verify and not args.out:
        parser.error("--out is required (or give --verify)")
    return args


def main(argv=None):
    """Runs the CLI; returns the exit code (0 ok, 1 verification failed, 2 bad input)."""
    args = parse_args(argv)
    quiet_libraries()
    try:
        if args.verify:
            rows, failures = verify_release(args.source, args.tolerance)
            for name, expected, got, difference in rows:
                print(f"{name}\texpected {expected:.6f}\tgot {got:.6f}\tdifference {difference:.3g}")
            for failure in failures:
                print(f"error: {failure}", file=sys.stderr)
            print(f"{len(rows) - len(failures)} of {len(rows)} golden scores within {args.tolerance:g}",
                  file=sys.stderr)
            return 1 if failures else 0
        summary = write_release(args.source, args.out, args.dtype, args.force, args.ssl_source)
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {summary['parameters']:,} parameters "
          f"({summary['parameters'] / summary['full_model_parameters']:.1%} of the full model's "
          f"{summary['full_model_parameters']:,}), weights {summary['weight_bytes'] / 1e6:.2f} MB; "
          f"golden scores within {summary['max_abs_difference_to_run']:.2g} of the run's detector",
          file=sys.stderr)
    return 0
