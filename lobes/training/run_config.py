"""What ``results.json`` records of how a result was made.

Every result says how it was made: the recipe's hparams that matter
(``RUN_CONFIG_KEYS``), and for a branch of a multi-depth or branched run its
own depth, head and seed, with the run it came from.
"""

from lobes.models.branches import BRANCH_SEMANTICS

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


def run_config(hparams, branch=None):
    """The ``config`` entry of a result's ``results.json``.

    Arguments
    ---------
    hparams : object
        The recipe's hparams (attributes, as ``Brain.hparams`` has them).
    branch : lobes.models.branches.Branch, optional
        The branch the result belongs to (a single run's, or None: the YAML's
        own configuration). A branch with a seed belongs to a run of (head,
        depth, seed) branches, one without to a multi-depth run.

    Example
    -------
    >>> from types import SimpleNamespace
    >>> run_config(SimpleNamespace(n_layers=[2, 4], head_type="ffn", seed=1),
    ...            SimpleNamespace(depth=4, head="ffn", seed=None, name="N4"))
    {'n_layers': 4, 'head_type': 'ffn', 'seed': 1, 'multi_depth_run': [2, 4]}
    """
    config = {key: getattr(hparams, key) for key in RUN_CONFIG_KEYS if hasattr(hparams, key)}
    if branch is None or branch.name is None:  # a single run: its YAML says it all
        return config
    if branch.seed is None:  # one depth of a multi-depth run
        config.update(n_layers=branch.depth, multi_depth_run=hparams.n_layers)
        return config
    config.update(head_type=branch.head, n_layers=branch.depth, seed=branch.seed)
    if branch.head != getattr(hparams, "head_type", branch.head):
        config.pop("pooling", None)  # the YAML's FFN option; not this head's
    config["branched_run"] = {
        "n_layers": hparams.n_layers,
        "heads": getattr(hparams, "heads", None),
        "init_seeds": getattr(hparams, "init_seeds", None),
        "batch_order_seed": hparams.seed,
        "semantics": BRANCH_SEMANTICS,
    }
    return config
