"""Start-up checks of a recipe's options, before any model is built.

``load_hyperpyyaml`` builds the SSL model and the head while it reads the
YAML, so an option checked only where it is used (a crop mode in the data
pipeline, the selection metric when the first checkpoint is ranked) fails
after minutes of loading or a whole training epoch. ``check_options`` reads
the YAML with its references and command-line overrides resolved but no tag
applied (nothing is built or imported), and refuses a wrong option in
seconds, naming it and the values it may take.
"""

import difflib
import io
import json
import numbers
import os
import re

from hyperpyyaml.core import resolve_references
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError

from lobes.utils.choices import CROP_MODES, SELECTION_METRICS, check_class_weights

NONFINITE_AUDIO = ("error", "skip")
# Options that must be > 0 (sizes, counts, rates and durations).
POSITIVE = ("max_samples", "batch_size", "lr", "number_of_epochs", "ddp_timeout")
# Options that must be >= 0.
NON_NEGATIVE = ("num_workers", "weight_decay", "patience")


class OptionError(ValueError):
    """A recipe option that cannot work; the message names it."""


def _head_type_error(given, hparams_file):
    """The ``OptionError`` of a ``head_type`` (``given`` as the user wrote it)."""
    return OptionError(
        f"{given} is not an option: {os.path.basename(str(hparams_file))} names its head once, as "
        "head_class (e.g. --head_class=!name:lobes.models.heads.AASISTHead, or the recipe's other YAML); "
        "a branched run lists head names in heads"
    )


def _unknown_override(err, hparams_file):
    """The ``OptionError`` of an override naming no key of the YAML, with the
    closest keys, from hyperpyyaml's ``KeyError``; None for another error."""
    match = re.match(r"Override '([^']+)' not found in: (\[.*\])", str(err.args[0]) if err.args else "")
    if match is None:
        return None
    name, known = match.group(1), re.findall(r"'([^']+)'", match.group(2))
    if name == "head_type":
        return _head_type_error("--head_type", hparams_file)
    close = difflib.get_close_matches(name, [k for k in known if not k.startswith("__")], n=3)
    hint = f"; did you mean {' or '.join(f'--{c}' for c in close)}?" if close else ""
    return OptionError(f"--{name} is not an option of {os.path.basename(str(hparams_file))}{hint}")


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
        try:
            resolved = resolve_references(fin, overrides, overrides_must_match=True)
        except KeyError as err:
            unknown = _unknown_override(err, hparams_file)
            if unknown is None:
                raise
            raise unknown from None
        except ValueError as err:
            found = re.match(r"'([^']+)' is a !PLACEHOLDER", str(err))
            if found is None:
                raise
            raise OptionError(f"--{found.group(1)} is required: {os.path.basename(str(hparams_file))} "
                              "leaves it to the command line") from None
        except DuplicateKeyError as err:
            found = re.search(r'duplicate key "([^"]+)"', str(err))
            name = found.group(1) if found else "an option"
            raise OptionError(f"--{name} is given more than once") from None
    return YAML(typ="rt").load(io.StringIO(resolved.getvalue()))


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        raise OptionError(f"{name}={value!r} is not a number")
    return value


def _check_depths(n_layers, ssl_source=None):
    """``n_layers``: a whole number, or a list of distinct ones, from 1 to the
    depth of a local ``ssl_source`` (read from its ``config.json``).

    Example
    -------
    >>> _check_depths(2.5)
    Traceback (most recent call last):
    ...
    lobes.training.options.OptionError: n_layers=2.5 must be a whole number of layers (or a list of them), from 1
    """
    depths = list(n_layers) if isinstance(n_layers, (list, tuple)) else [n_layers]
    full = None
    config = os.path.join(str(ssl_source), "config.json") if ssl_source else None
    if config and os.path.isfile(config):
        try:
            with open(config, encoding="utf-8") as fin:
                full = int(json.load(fin)["num_hidden_layers"])
        except (ValueError, KeyError, TypeError):
            full = None  # the encoder's own loading names what is wrong with it
    bad = [d for d in depths if isinstance(d, bool) or not isinstance(d, int) or d < 1
           or (full is not None and d > full)]
    if not depths or bad:
        within = f" to {full} (the layers of {ssl_source})" if full is not None else ""
        raise OptionError(
            f"n_layers={_shown(n_layers)} must be a whole number of layers (or a list of them), from 1{within}"
        )
    if len(set(depths)) != len(depths):
        raise OptionError(f"n_layers={_shown(n_layers)} lists a depth more than once")


def _shown(value):
    return list(value) if isinstance(value, (list, tuple)) else value


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
    if "n_layers" in hparams:
        _check_depths(hparams["n_layers"], hparams.get("ssl_source"))
    data_folder = hparams.get("data_folder")
    if isinstance(data_folder, str) and not os.path.isdir(data_folder):
        raise OptionError(
            f"data_folder={data_folder!r} is not a folder (the dataset, laid out as the recipe's README says)"
        )
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
        raise _head_type_error(f"head_type={hparams['head_type']!r}", hparams_file)
