"""Loading a recipe output folder (or one branch of it) without running its YAML.

The folder's ``hyperparams.yaml`` is read for plain values only
(``lobes.inference.plain_yaml``); the modules are built in code
(``lobes.inference.model_spec``) and the selected checkpoint of ``save/`` is
loaded into them. The result scores exactly as the recipe scored.
"""

import os

from lobes.evaluation.calibration import read_calibration
from lobes.inference.checkpoints import load_checkpoint
from lobes.inference.model_spec import ModelSpec, build_modules
from lobes.inference.plain_yaml import IgnoredTag, read_plain_yaml
from lobes.models.branches import plan_branches
from lobes.models.heads.registry import name_from_class_path
from lobes.utils.choices import DEFAULT_CROP, DEFAULT_MAX_SAMPLES, DEFAULT_SELECTION_METRIC
from lobes.utils.run_folder import HPARAMS_FILE, SAVE_DIR, SINGLE_RUN, is_branch_name

# ``LayerwiseSSL`` keyword arguments a recipe may set on its ``ssl:`` entry.
SSL_OPTIONS = ("include_cnn_output", "fusion_norm", "normalize_waveform", "use_attention_mask", "freeze")
# Entries of the ``head:`` mapping that are not head options.
NOT_HEAD_OPTIONS = ("ssl", "branches", "head_type", "head_class")


def locate_run(folder):
    """``(hparams file, branch name)`` of a run folder (branch ``"."``) or
    branch folder.

    A branch folder is ``<run>/N<n>/`` (multi-depth run) or
    ``<run>/<head>/N<n>/seed<s>/`` (branched run) with the run's
    ``hyperparams.yaml`` above it.
    """
    folder = os.path.normpath(str(folder))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"model folder {folder} does not exist")
    hparams_file = os.path.join(folder, HPARAMS_FILE)
    if os.path.isfile(hparams_file):
        return hparams_file, SINGLE_RUN
    parts = folder.split(os.sep)
    for levels in (1, 3):
        branch = "/".join(parts[-levels:])
        parent_hparams = os.path.join(os.sep.join(parts[:-levels]), HPARAMS_FILE)
        if is_branch_name(branch) and os.path.isfile(parent_hparams):
            return parent_hparams, branch
    raise FileNotFoundError(
        f"{folder} is not a recipe output folder: it has no hyperparams.yaml "
        "(nor is it the N<n>/ folder of a multi-depth run or the "
        "<head>/N<n>/seed<s>/ folder of a branched run)"
    )


def _plain(value):
    return None if isinstance(value, IgnoredTag) else value


def _tag_arguments(values, key):
    """Plain keyword arguments of a tagged mapping entry (``ssl:``, ``head:``)."""
    entry = values.get(key)
    if isinstance(entry, IgnoredTag) and isinstance(entry.value, dict):
        return {k: v for k, v in entry.value.items() if not isinstance(v, IgnoredTag)}
    return {}


def recorded_head_name(values, hparams_file):
    """The name of the head a run's ``hyperparams.yaml`` builds: the class its
    ``head_class`` (or ``head:`` entry) names, read as text and never
    imported; ``head_type`` in folders that recorded one."""
    head_type = _plain(values.get("head_type"))
    if head_type is not None:
        return head_type
    head = values.get("head")
    nested = head.value.get("head_class") if isinstance(head, IgnoredTag) and isinstance(head.value, dict) else None
    for node in (values.get("head_class"), head, nested):
        tag = node.tag if isinstance(node, IgnoredTag) else ""
        if tag.startswith(("!name:", "!new:")):
            return name_from_class_path(tag.split(":", 1)[1])
    raise ValueError(f"{hparams_file} names no head class (head_class: !name:... or head: !new:...)")


def run_spec(values, hparams_file, branch=SINGLE_RUN, ssl_source=None):
    """The ``ModelSpec`` of a run (or of one of its branches) from the plain
    values of its ``hyperparams.yaml``."""
    def need(key):
        value = _plain(values.get(key))
        if value is None:
            raise ValueError(f"{hparams_file} has no plain value for {key!r}")
        return value

    n_layers, own_head = need("n_layers"), recorded_head_name(values, hparams_file)
    # The run's branch plan, as its Brain had it; a single run's one branch is its folder, ".".
    plan = plan_branches(n_layers, own_head, _plain(values.get("seed")),
                         _plain(values.get("heads")), _plain(values.get("init_seeds")))
    match = [b for b in plan if b.name == branch]
    if not match and branch == SINGLE_RUN:
        raise ValueError(
            f"{hparams_file} describes a run of several branches ({[b.name for b in plan]}): "
            "load one of its N<n>/ (or <head>/N<n>/seed<s>/) folders"
        )
    if not match:
        raise FileNotFoundError(f"the run in {hparams_file} has no branch {branch}")
    n_layers, head_type = match[0].depth, match[0].head
    ssl_args = _tag_arguments(values, "ssl")
    options = {key: ssl_args[key] for key in SSL_OPTIONS if key in ssl_args}
    for key, top_key in (("freeze", "freeze_ssl"), ("include_cnn_output", "include_cnn_output"),
                         ("fusion_norm", "fusion_norm")):
        if key not in options and _plain(values.get(top_key)) is not None:
            options[key] = values[top_key]
    head_options = {k: v for k, v in _tag_arguments(values, "head").items() if k not in NOT_HEAD_OPTIONS}
    if head_type == "frame":  # segment.yaml: frame scores pooled to the utterance score as trained
        head_options["pooling"] = _plain(values.get("utterance_pooling")) or "min"
    return ModelSpec(
        ssl_source=str(ssl_source or ssl_args.get("source") or need("ssl_source")),
        n_layers=int(n_layers),
        head_type=head_type,
        head_options=head_options,
        own_head_type=own_head,
        max_samples=int(_plain(values.get("max_samples")) or DEFAULT_MAX_SAMPLES),
        eval_crop=_plain(values.get("eval_crop")) or DEFAULT_CROP,
        selection_metric=_plain(values.get("selection_metric")) or DEFAULT_SELECTION_METRIC,
        **options,
    )


def load_run_folder(detector_class, folder, overrides=None, ssl_source=None, run_opts=None,
                    head_classes=(), **detector_kwargs):
    """A ``detector_class`` (``SpoofDetector``) for a run or branch folder.

    Arguments
    ---------
    folder : str
        ``hyperparams.yaml`` + ``save/``, or a branch folder of a
        multi-depth or branched run.
    overrides : dict, optional
        Plain values replacing those of the YAML (e.g. ``max_samples``).
    ssl_source : str, optional
        Load the SSL from here instead of the recorded source.
    run_opts : dict, optional
        SpeechBrain run options (``device``).
    head_classes : list of classes, optional
        Head classes of the user's own that the run may have trained (a
        model folder never imports the class it names).
    **detector_kwargs
        ``window``, ``hop``, ``aggregation``, ``batch_size``, ``precision``,
        ``backend``, ``num_workers``.
    """
    folder = os.path.normpath(str(folder))
    hparams_file, branch = locate_run(folder)
    values = read_plain_yaml(hparams_file)
    values.update(overrides or {})
    spec = run_spec(values, hparams_file, branch, ssl_source)
    modules = build_modules(spec, head_classes, hparams_file)
    # A branch folder's checkpoints hold its fusion and head; a single run's, the ssl entry.
    stored = modules if branch == SINGLE_RUN else {"fusion": modules["ssl"].fusion, "head": modules["head"]}
    selected = load_checkpoint(stored, os.path.join(folder, SAVE_DIR), spec.selection_metric)
    detector = detector_class(modules, spec.detector_hparams(), run_opts=run_opts, **detector_kwargs)
    detector.checkpoint = selected
    detector.model_spec = spec
    detector.calibration = read_calibration(folder)
    return detector
