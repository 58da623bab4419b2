"""What ``results.json`` records of how a result was made.

Every result says how it was made: the recipe's hparams that matter
(``RUN_CONFIG_KEYS``), and for a branch of a multi-depth or branched run its
own depth, head and seed, with the run it came from.
"""

from lobes.models.branches import BRANCH_SEMANTICS, DEPTHS, SINGLE
from lobes.models.heads.registry import head_name

# hparams copied into results.json so every result says how it was made.
RUN_CONFIG_KEYS = (
    "dataset",
    "ssl_source",
    "n_layers",
    "head_type",
    "freeze_ssl",
    "seed",
    "class_weights",
    "batch_size",
    "lr",
    "number_of_epochs",
    "train_crop",
    "eval_crop",
    "max_samples",
    "selection_metric",
    "pooling",
    "fusion_norm",
    "augment",
)


def run_config(hparams, branch=None, head_type=None):
    """The ``config`` entry of a result's ``results.json``.

    Arguments
    ---------
    hparams : object
        The recipe's hparams (attributes, as ``Brain.hparams`` has them).
    branch : lobes.models.branches.Branch, optional
        The branch the result belongs to (a single run's, or None: the YAML's
        own configuration); its ``kind`` says whether it is one depth of a
        multi-depth run or one (head, depth, seed) of a branched run.
    head_type : str, optional
        The recorded name of the result's head
        (``lobes.models.heads.registry.head_name``).

    Example
    -------
    >>> from types import SimpleNamespace
    >>> from lobes.models.heads import FFNHead
    >>> run_config(SimpleNamespace(n_layers=[2, 4], head_class=FFNHead, seed=1),
    ...            SimpleNamespace(depth=4, head="ffn", seed=None, name="N4", kind="depths"), "ffn")
    {'n_layers': 4, 'head_type': 'ffn', 'seed': 1, 'multi_depth_run': [2, 4]}
    """
    config = {
        key: head_type if key == "head_type" else getattr(hparams, key)
        for key in RUN_CONFIG_KEYS
        if (head_type is not None if key == "head_type" else hasattr(hparams, key))
    }
    if branch is None or branch.kind == SINGLE:  # a single run: its YAML says it all
        return config
    if branch.kind == DEPTHS:  # one depth of a multi-depth run
        config.update(n_layers=branch.depth, multi_depth_run=hparams.n_layers)
        return config
    config.update(head_type=branch.head, n_layers=branch.depth, seed=branch.seed)
    own = head_name(hparams.head_class) if hasattr(hparams, "head_class") else branch.head
    if branch.head != own:
        config.pop("pooling", None)  # the YAML's FFN option; not this head's
    config["branched_run"] = {
        "n_layers": hparams.n_layers,
        "heads": getattr(hparams, "heads", None),
        "init_seeds": getattr(hparams, "init_seeds", None),
        "batch_order_seed": hparams.seed,
        "semantics": BRANCH_SEMANTICS,
    }
    return config
