"""Start-up checks of a recipe's options, before any model is built.

``load_hyperpyyaml`` builds the SSL model and the head while it reads the
YAML, so an option checked only where it is used (a crop mode in the data
pipeline, the selection metric when the first checkpoint is ranked) fails
after minutes of loading or a whole training epoch. ``check_options`` reads
the YAML with its references and command-line overrides resolved but no tag
applied (nothing is built or imported), and refuses a wrong option in
seconds, naming it and the values it may take.
"""

import io
import json
import numbers
import os

from hyperpyyaml.core import resolve_references
from ruamel.yaml import YAML

from lobes.utils.choices import CROP_MODES, SELECTION_METRICS, check_class_weights

NONFINITE_AUDIO = ("error", "skip")
# Options that must be > 0 (sizes, counts, rates and durations).
POSITIVE = ("max_samples", "batch_size", "lr", "number_of_epochs", "ddp_timeout")
# Options that must be >= 0.
NON_NEGATIVE = ("num_workers", "weight_decay", "patience")


class OptionError(ValueError):
    """A recipe option that cannot work; the message names it."""


def plain_hparams(hparams_file, overrides=""):
    """The YAML's values with ``!ref`` and ``overrides`` resolved, tags kept
    as ruamel's tagged nodes (``.tag.value``), nothing instantiated.

    Example
    -------
    >>> path = getfixture("tmp_path") / "h.yaml"
    >>> _ = path.write_text("a: 1\\nb: !ref <a>\\nc: !new:foo.Bar\\n  x: 1\\n")
    >>> h = plain_hparams(path, "a: 2")
    >>> h["b"], h["c"].tag.value
    (2, '!new:foo.Bar')
    """
    with open(hparams_file, encoding="utf-8") as fin:
        resolved = resolve_references(fin, overrides)
    return YAML(typ="rt").load(io.StringIO(resolved.getvalue()))


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        raise OptionError(f"{name}={value!r} is not a number")
    return value


def check_options(hparams, hparams_file="the YAML"):
    """Raises ``OptionError`` for the first option that cannot work.

    Example
    -------
    >>> check_options({"eval_crop": "frist"})
    Traceback (most recent call last):
    ...
    lobes.training.options.OptionError: eval_crop='frist' is not a crop mode; allowed: first, random, full
    >>> check_options({"class_weights": [0.5]})
    Traceback (most recent call last):
    ...
    lobes.training.options.OptionError: class_weights=[0.5] must list 2 positive weights, [spoof, bonafide]
    """
    for name in ("train_crop", "eval_crop"):
        if name in hparams and hparams[name] not in CROP_MODES:
            raise OptionError(
                f"{name}={hparams[name]!r} is not a crop mode; allowed: {', '.join(CROP_MODES)}"
            )
    metric = hparams.get("selection_metric", "EER")
    if metric not in SELECTION_METRICS:
        raise OptionError(
            f"selection_metric={metric!r} is not allowed; allowed: {', '.join(SELECTION_METRICS)}"
            " (case matters)"
        )
    if hparams.get("nonfinite_audio", "error") not in NONFINITE_AUDIO:
        raise OptionError(
            f"nonfinite_audio={hparams['nonfinite_audio']!r} is not allowed; "
            f"allowed: {', '.join(NONFINITE_AUDIO)}"
        )
    if "class_weights" in hparams:
        try:
            check_class_weights(hparams["class_weights"])
        except ValueError as err:
            raise OptionError(str(err)) from None
    for name in POSITIVE:
        if name in hparams and not _number(name, hparams[name]) > 0:
            raise OptionError(f"{name}={hparams[name]!r} must be greater than 0")
    for name in NON_NEGATIVE:
        if name in hparams and not _number(name, hparams[name]) >= 0:
            raise OptionError(f"{name}={hparams[name]!r} must be 0 or more")
    if hparams.get("augment"):
        # The augment block's own checks (lobes.augment), now rather than
        # when the datasets are built, after the model.
        from lobes.augment import build_augmenter

        try:
            build_augmenter(json.loads(json.dumps(hparams["augment"])))
        except ValueError as err:
            raise OptionError(str(err)) from None
    if "head_type" in hparams:
        raise OptionError(
            f"head_type={hparams['head_type']!r} is not an option: {os.path.basename(str(hparams_file))} names "
            "its head once, as head_class (e.g. --head_class=!name:lobes.models.heads.AASISTHead, "
            "or the recipe's other YAML); a branched run lists head names in heads"
        )
