"""Reading a release folder: its format, the checks every file passes before
any audio is read, and the detector built from it.

A release is data: plain JSON and safetensors, loaded into modules built in
code (``lobes.inference.model_spec``); nothing in it is executed or
unpickled. ``lobes.inference.release`` writes and verifies releases.
"""

import hashlib
import json
import os

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from lobes.evaluation.calibration import read_calibration
from lobes.inference.hub import resolve_release_source
from lobes.inference.model_spec import ModelSpec, build_modules, head_class_for
from lobes.models.layer_sum import WeightedLayerSum
from lobes.models.ssl import SSL_CLASSES, SUPPORTED_MODEL_TYPES, looks_like_local_path
from lobes.utils.choices import CROP_MODES, DEFAULT_CROP
from lobes.utils.run_folder import CALIBRATION_FILE, HPARAMS_FILE

FORMAT = "lobes-countermeasure-release"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
ENCODER_DIR = "encoder"
ENCODER_WEIGHTS = f"{ENCODER_DIR}/model.safetensors"
ENCODER_CONFIG = f"{ENCODER_DIR}/config.json"
FEATURE_EXTRACTOR_CONFIG = f"{ENCODER_DIR}/preprocessor_config.json"
FUSION_HEAD_WEIGHTS = "fusion_head.safetensors"
GOLDEN_FILE = "golden.json"
README_FILE = "README.md"
RELEASE_FILES = (CONFIG_FILE, ENCODER_CONFIG, FEATURE_EXTRACTOR_CONFIG, ENCODER_WEIGHTS,
                 FUSION_HEAD_WEIGHTS, CALIBRATION_FILE, GOLDEN_FILE, README_FILE)
# |expected - recomputed| allowed on a golden raw score: far above the float
# rounding of another BLAS or thread count (1e-6 on these clips), far below
# the change one altered weight makes.
GOLDEN_TOLERANCE = 1e-4


class ReleaseError(ValueError):
    """A release folder that cannot be loaded; the message names the file."""


def read_json_file(path, what):
    """The JSON of ``path`` (``what`` the file is, for errors); a missing or
    malformed file is a ``ReleaseError`` naming it."""
    if not os.path.isfile(path):
        raise ReleaseError(f"{path} is missing ({what})")
    try:
        with open(path, encoding="utf-8") as fin:
            return json.load(fin)
    except (ValueError, UnicodeDecodeError) as err:
        raise ReleaseError(f"{path} is not valid JSON ({what}): {err}") from err


def is_release_source(source):
    """True for a release folder (a ``config.json`` of this format, or one
    without a ``hyperparams.yaml`` beside it) or a hub id; False for a run or
    branch folder."""
    source = os.path.expanduser(str(source))
    if not os.path.isdir(source):
        return not looks_like_local_path(source)
    config = os.path.join(source, CONFIG_FILE)
    if not os.path.isfile(config):
        return False
    try:
        with open(config, encoding="utf-8") as fin:
            return json.load(fin).get("format") == FORMAT
    except (ValueError, UnicodeDecodeError, AttributeError):
        # Not this format's config: a release if nothing says it is a run folder.
        return not os.path.isfile(os.path.join(source, HPARAMS_FILE))


def _check_weights(path, expected):
    """Refuses a missing or truncated safetensors file, or one whose tensors
    do not match ``expected`` (name -> shape), naming the file."""
    if not os.path.isfile(path):
        raise ReleaseError(f"{path} is missing")
    try:
        with safe_open(path, framework="pt") as weights:
            found = {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except (SafetensorError, OSError) as err:
        raise ReleaseError(f"{path} is not a complete safetensors file (truncated or damaged): {err}") from err
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k}: {found[k]} in the file, {expected[k]} for config.json"
             for k in sorted(set(found) & set(expected)) if found[k] != expected[k]]
    if missing or unexpected or wrong:
        details = "; ".join(filter(None, [
            f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}" if missing else "",
            f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}" if unexpected else "",
            f"shape mismatch {wrong[:3]}" if wrong else "",
        ]))
        raise ReleaseError(f"{path} does not fit the release's config.json: {details}")


def _shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


# Bounds of a release's sizes: the largest SSL encoders have 48 layers of
# width 1920; a config far beyond them is damaged, and would make the shape
# check build a model that size.
MAX_LAYERS = 64
MAX_HIDDEN_SIZE = 8192
# The longest crop a release may score at once: ten minutes at 16 kHz.
MAX_CROP_SAMPLES = 10 * 60 * 16000
FUSION_NORMS = ("batch", "layer", "none")


WEIGHT_FILES = (ENCODER_WEIGHTS, FUSION_HEAD_WEIGHTS)


def file_sha256(path):
    """The SHA-256 of the file at ``path``, in hex."""
    with open(path, "rb") as fin:
        return hashlib.file_digest(fin, "sha256").hexdigest()


def check_weight_hashes(folder, config, config_path):
    """Refuses a weight file whose SHA-256 differs from the one ``config.json``
    records (a release written before hashes were recorded has none to check)."""
    recorded = config.get("sha256")
    if recorded is None:
        return
    if not isinstance(recorded, dict):
        raise ReleaseError(f"{config_path}: sha256 must map the weight files to their hashes")
    for name in WEIGHT_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and recorded.get(name) != file_sha256(path):
            raise ReleaseError(
                f"{path}: its SHA-256 differs from the one {config_path} records: the file changed "
                "after the release was written (damaged or edited); fetch the release again"
            )


def check_config_values(config, config_path):
    """Refuses a config value of the wrong type or out of range, naming the
    field: booleans are JSON booleans, the crop a known mode and a positive
    length, sizes positive and bounded, the fusion consistent with the depth.

    Example
    -------
    >>> good = {"n_layers": 2, "full_depth": 12, "hidden_size": 768, "include_cnn_output": False,
    ...         "normalize_waveform": True, "use_attention_mask": True, "sample_rate": 16000,
    ...         "fusion": {"n_layers": 2, "norm": "batch"}, "crop": {"max_samples": 64600, "eval_crop": "first"}}
    >>> check_config_values(good, "config.json")
    >>> check_config_values({**good, "normalize_waveform": "false"}, "config.json")
    Traceback (most recent call last):
    ...
    lobes.inference.release_loader.ReleaseError: config.json: normalize_waveform must be true or false, got 'false'
    >>> check_config_values({**good, "crop": {"max_samples": -5, "eval_crop": "first"}}, "c.json")
    Traceback (most recent call last):
    ...
    lobes.inference.release_loader.ReleaseError: c.json: crop.max_samples must be a whole number in [1, 9600000], got -5
    """
    def whole(name, value, low, high):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ReleaseError(f"{config_path}: {name} must be a whole number in [{low}, {high}], got {value!r}")
        return value

    for name in ("include_cnn_output", "normalize_waveform", "use_attention_mask"):
        if name in config and not isinstance(config[name], bool):
            raise ReleaseError(f"{config_path}: {name} must be true or false, got {config[name]!r}")
    full_depth = whole("full_depth", config.get("full_depth", config.get("n_layers")), 1, MAX_LAYERS)
    n_layers = whole("n_layers", config.get("n_layers"), 1, full_depth)
    whole("hidden_size", config.get("hidden_size"), 1, MAX_HIDDEN_SIZE)
    if config.get("sample_rate", 16000) != 16000:
        raise ReleaseError(f"{config_path}: sample_rate must be 16000, got {config.get('sample_rate')!r}")
    fusion, crop = config.get("fusion"), config.get("crop")
    if not isinstance(fusion, dict) or not isinstance(crop, dict):
        raise ReleaseError(f"{config_path}: fusion and crop must be mappings")
    whole("fusion.n_layers", fusion.get("n_layers"), n_layers + bool(config.get("include_cnn_output")),
          n_layers + bool(config.get("include_cnn_output")))
    if fusion.get("norm") not in FUSION_NORMS:
        raise ReleaseError(f"{config_path}: fusion.norm must be one of {', '.join(FUSION_NORMS)}, "
                           f"got {fusion.get('norm')!r}")
    whole("crop.max_samples", crop.get("max_samples"), 1, MAX_CROP_SAMPLES)
    if crop.get("eval_crop", DEFAULT_CROP) not in CROP_MODES:
        raise ReleaseError(f"{config_path}: crop.eval_crop must be one of {', '.join(CROP_MODES)}, "
                           f"got {crop.get('eval_crop')!r}")


def check_release(folder, head_classes=()):
    """Reads and checks every file of a release folder; returns its config.

    Everything a load needs is checked here, before any audio is read: the
    format version, the encoder config (a supported model type, cut to
    ``n_layers``, naming no code), the weight files (present, complete, every
    tensor of the shape the config implies) and the calibration.
    """
    config_path = os.path.join(folder, CONFIG_FILE)
    config = read_json_file(config_path, "the release config")
    if config.get("format") != FORMAT:
        raise ReleaseError(f"{config_path} is not a lobes release config (format {config.get('format')!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ReleaseError(
            f"{config_path} has format_version {version!r}, newer than this lobes reads "
            f"({FORMAT_VERSION}): upgrade lobes to load this release"
        )
    try:
        model_type, n_layers = config["model_type"], int(config["n_layers"])
        head_options = dict(config["head"].get("options") or {})
        head_type = config["head"]["type"]
        fusion_layers, fusion_norm = int(config["fusion"]["n_layers"]), config["fusion"]["norm"]
        hidden_size = int(config["hidden_size"])
    except (KeyError, TypeError, ValueError) as err:
        raise ReleaseError(f"{config_path} lacks a field or has a bad value: {err!r}") from err
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ReleaseError(f"{config_path}: model_type {model_type!r} is not one of {SUPPORTED_MODEL_TYPES}")
    check_config_values(config, config_path)
    try:
        head_class = head_class_for(head_type, head_classes, config_path)
    except ValueError as err:
        raise ReleaseError(str(err)) from None

    encoder_path = os.path.join(folder, ENCODER_CONFIG)
    encoder_config = read_json_file(encoder_path, "the encoder config")
    if "auto_map" in encoder_config:
        raise ReleaseError(f"{encoder_path} names code to load (auto_map); a release holds none")
    if encoder_config.get("model_type") != model_type or encoder_config.get("num_hidden_layers") != n_layers:
        raise ReleaseError(
            f"{encoder_path} describes a {encoder_config.get('model_type')!r} model with "
            f"{encoder_config.get('num_hidden_layers')} layers; {config_path} says {model_type!r} "
            f"with {n_layers}"
        )
    read_json_file(os.path.join(folder, FEATURE_EXTRACTOR_CONFIG), "the feature-extractor config")
    config_class, model_class = SSL_CLASSES[model_type]
    try:
        hf_config = config_class(**encoder_config)
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            expected_encoder = _shapes(model_class(hf_config))
            fusion = WeightedLayerSum(fusion_layers, norm=fusion_norm)
            head = head_class(hidden_size, **head_options)
    except (TypeError, ValueError) as err:
        raise ReleaseError(f"{config_path} or {encoder_path} does not describe a model: {err}") from err
    _check_weights(os.path.join(folder, ENCODER_WEIGHTS), expected_encoder)
    expected = {f"fusion.{k}": v for k, v in _shapes(fusion).items()}
    expected.update({f"head.{k}": v for k, v in _shapes(head).items()})
    _check_weights(os.path.join(folder, FUSION_HEAD_WEIGHTS), expected)
    check_weight_hashes(folder, config, config_path)  # complete and shaped right, but edited?
    calibration_path = os.path.join(folder, CALIBRATION_FILE)
    if not os.path.isfile(calibration_path):
        raise ReleaseError(f"{calibration_path} is missing (the calibration to LLRs)")
    try:
        read_calibration(folder)
    except ValueError as err:
        raise ReleaseError(str(err)) from err
    return config


def release_spec(folder, config):
    """The ``ModelSpec`` of a checked release: the encoder from its own folder."""
    return ModelSpec(
        ssl_source=os.path.abspath(os.path.join(folder, ENCODER_DIR)),
        n_layers=int(config["n_layers"]),
        head_type=config["head"]["type"],
        head_options=dict(config["head"].get("options") or {}),
        include_cnn_output=bool(config.get("include_cnn_output", False)),
        fusion_norm=config["fusion"]["norm"],
        normalize_waveform=bool(config["normalize_waveform"]),
        use_attention_mask=bool(config.get("use_attention_mask", True)),
        max_samples=int(config["crop"]["max_samples"]),
        eval_crop=config["crop"].get("eval_crop", DEFAULT_CROP),
    )


def load_release(detector_class, source, run_opts=None, revision=None, cache_dir=None, prior=None,
                 check_golden=True, head_classes=(), **detector_kwargs):
    """A ``detector_class`` (``SpoofDetector``) for a release folder or hub id.

    Arguments
    ---------
    source : str
        A release folder or a Hugging Face hub id (``owner/name``).
    run_opts : dict, optional
        SpeechBrain run options (``device``).
    revision, cache_dir : str, optional
        Hub revision and cache (``HF_HUB_CACHE`` by default).
    prior : float, optional
        Prior of bona fide for posteriors and the Bayes decision (the
        ASVspoof 5 cost model's effective prior when None).
    check_golden : bool
        Also require ``golden.json`` (absent only while a release is written).
    head_classes : list of classes, optional
        Head classes of the user's own that the release may use (its config
        names the class, which is never imported).
    **detector_kwargs
        ``window``, ``hop``, ``aggregation``, ``batch_size``, ``precision``,
        ``backend``, ``num_workers``.
    """
    folder = resolve_release_source(source, revision=revision, cache_dir=cache_dir,
                                    patterns=RELEASE_FILES)
    config = check_release(folder, head_classes)
    if check_golden:
        read_json_file(os.path.join(folder, GOLDEN_FILE), "the golden scores")
    spec = release_spec(folder, config)
    modules = build_modules(spec, head_classes, os.path.join(folder, CONFIG_FILE))
    modules["ssl"].float()  # an fp16 release is computed in fp32 unless precision says otherwise
    state = load_file(os.path.join(folder, FUSION_HEAD_WEIGHTS))
    for name, module in (("fusion", modules["ssl"].fusion), ("head", modules["head"])):
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    detector = detector_class(modules, spec.detector_hparams(), run_opts=run_opts, **detector_kwargs)
    detector.model_spec = spec
    detector.calibration = read_calibration(folder)
    detector.prior = prior
    detector.release_folder, detector.release_config = folder, config
    return detector
