"""The per-utterance augmentation chain built from a recipe's ``augment:`` block.

SpeechBrain's ``Augmenter`` works on a batch on the training device and draws
once per batch whether to augment; here each method has its own probability,
drawn per utterance inside the data pipeline, i.e. in the DataLoader workers
(CPU codecs and filters never stall the GPU, and with p < 1 a batch mixes
clean and augmented utterances).

Reproducibility: each process draws from a NumPy generator seeded with
``torch.initial_seed()``, which PyTorch sets in every DataLoader worker from
the run's seeded generator (a new value per worker and per epoch), and which
is the YAML ``seed`` in the main process (``num_workers: 0``; one stream then
runs through the epochs), mixed with the DDP rank (``RANK``). The same seed,
``num_workers`` and batch order thus give the same augmentations.
"""

import os

import numpy as np
import torch

from lobes.augment.codec import CodecRoundTrip
from lobes.augment.noise import NoiseFromList, ReverbFromList
from lobes.augment.rawboost import RawBoost

METHODS = ("rawboost", "reverb", "noise", "codec")
POSITIONS = ("before_crop", "after_crop")
BLOCK_KEYS = ("dev", "position", "order", *METHODS)
# The only keys of each method besides ``p``; RawBoost also takes its
# published parameters (lobes.augment.rawboost.DEFAULTS).
METHOD_KEYS = {
    "rawboost": ("mode",),
    "codec": ("codecs",),
    "noise": ("csv", "snr_low", "snr_high"),
    "reverb": ("csv",),
}
SALT = 0x5EED_A06  # keeps the augmentation stream apart from torch's own


def _probability(value, option):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{option} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _build_method(name, config, sample_rate, option):
    """The augmentation object of one method from its YAML mapping."""
    config = dict(config)
    config.pop("p")
    if name == "rawboost":
        return RawBoost(sample_rate=sample_rate, option=option, **config)
    unknown = sorted(set(config) - set(METHOD_KEYS[name]))
    if unknown:
        raise ValueError(f"{option}.{unknown[0]} is not an option; known: p, {', '.join(METHOD_KEYS[name])}")
    if name == "codec":
        return CodecRoundTrip(config.get("codecs"), sample_rate, f"{option}.codecs")
    if name == "noise":
        return NoiseFromList(
            config.get("csv"), config.get("snr_low", 0.0), config.get("snr_high", 15.0),
            sample_rate, f"{option}.csv",
        )
    return ReverbFromList(config.get("csv"), sample_rate, f"{option}.csv")


class UtteranceAugmenter:
    """Applies each method of ``methods`` with its own probability, in order.

    Arguments
    ---------
    methods : list of (name, probability, callable)
        Each callable maps ``(float array, numpy Generator)`` to an array of
        the same length.
    dev : bool
        Whether the dev set is augmented too (test sets never are).
    position : str
        ``before_crop`` (the whole utterance, then the crop) or ``after_crop``.

    Example
    -------
    >>> flip = UtteranceAugmenter([("flip", 1.0, lambda x, rng: -x)])
    >>> flip(torch.ones(3)).tolist()
    [-1.0, -1.0, -1.0]
    """

    def __init__(self, methods, dev=False, position="before_crop"):
        self.methods = methods
        self.dev = dev
        self.position = position
        self._rng, self._rng_key = None, None

    def describe(self):
        """One line for the log, e.g. ``rawboost p=1.0, codec p=0.5 (before_crop)``."""
        methods = ", ".join(f"{name} p={probability}" for name, probability, _ in self.methods)
        return f"{methods} ({self.position})"

    @property
    def min_samples(self):
        """Shortest clip every method accepts."""
        return max([getattr(method, "min_samples", 1) for _, _, method in self.methods] + [1])

    def generator(self):
        """This process's generator, renewed whenever torch's seed changes
        (a new DataLoader worker or epoch)."""
        key = torch.initial_seed()
        if key != self._rng_key:
            # The rank keeps identically seeded DDP processes apart.
            rank = int(os.environ.get("RANK", 0))
            self._rng, self._rng_key = np.random.default_rng([SALT, rank, key]), key
        return self._rng

    def __call__(self, wav, source=""):
        """Augments a 1-D float tensor; errors name ``source`` (the file)."""
        rng = self.generator()
        x = None
        for name, probability, method in self.methods:
            if rng.random() >= probability:
                continue
            if x is None:
                x = wav.numpy().astype(np.float64)
            try:
                x = method(x, rng)
            except Exception as err:
                raise RuntimeError(f"augment.{name} failed on {source}: {err}") from err
            if x.shape[0] != wav.shape[0] or not np.all(np.isfinite(x)):
                raise RuntimeError(f"augment.{name} returned a bad signal for {source}")
        return wav if x is None else torch.from_numpy(x.astype(np.float32))


def build_augmenter(config, sample_rate=16000, option="augment"):
    """The ``UtteranceAugmenter`` of a YAML ``augment:`` block, or None when
    the block is absent or every probability is 0.

    Everything is checked here, at start-up: unknown keys, probabilities,
    RawBoost modes and parameters, codecs and bitrates (each pair is
    round-tripped once), noise and RIR lists (every file's header).

    Example
    -------
    >>> build_augmenter({"rawboost": {"p": 0.0, "mode": 5}}) is None
    True
    >>> build_augmenter({"rawboost": {"p": 0.5, "mode": 9}})
    Traceback (most recent call last):
    ...
    ValueError: augment.rawboost.mode must be one of [0, 1, 2, 3, 4, 5, 6, 7, 8], got 9
    >>> build_augmenter({"rawbost": {"p": 0.5}})
    Traceback (most recent call last):
    ...
    ValueError: augment.rawbost is not an option; known: dev, position, order, rawboost, reverb, noise, codec
    """
    if not config:
        return None
    if not isinstance(config, dict):
        raise ValueError(f"{option} must be a mapping, got {config!r}")
    unknown = sorted(set(config) - set(BLOCK_KEYS))
    if unknown:
        raise ValueError(f"{option}.{unknown[0]} is not an option; known: {', '.join(BLOCK_KEYS)}")
    position = config.get("position", "before_crop")
    if position not in POSITIONS:
        raise ValueError(f"{option}.position must be one of {POSITIONS}, got {position!r}")
    dev = config.get("dev", False)
    if not isinstance(dev, bool):
        raise ValueError(f"{option}.dev must be True or False, got {dev!r}")
    order = list(config.get("order", METHODS))
    if sorted(order) != sorted(set(order)) or not set(order) <= set(METHODS):
        raise ValueError(f"{option}.order must list distinct methods among {METHODS}, got {order}")
    absent = [name for name in METHODS if name in config and name not in order]
    if absent:
        raise ValueError(f"{option}.order leaves out {absent}, which the block configures")
    methods = []
    for name in order:
        method_config = config.get(name)
        if method_config is None:
            continue
        if not isinstance(method_config, dict) or "p" not in method_config:
            raise ValueError(f"{option}.{name} must be a mapping with a probability p")
        probability = _probability(method_config["p"], f"{option}.{name}.p")
        if probability > 0:
            method = _build_method(name, method_config, sample_rate, f"{option}.{name}")
            methods.append((name, probability, method))
    if not methods:
        return None
    return UtteranceAugmenter(methods, dev=dev, position=position)
