#!/usr/bin/env python3
"""Layer-wise SSL countermeasure on SceneFake.

Trains on train, selects the checkpoint on dev, scores every test set named
in the YAML's ``test_sets`` whose split is present (seen and unseen scenes):

    python recipes/SceneFake/train.py recipes/SceneFake/hparams/ffn.yaml \
        --data_folder=/path/to/SceneFake --n_layers=12

Writes ``<output_folder>/scores/<test set>.txt`` for each test set and
``<output_folder>/results.json`` (EER per test set, layer weights).
"""

import os
import sys

from speechbrain.utils.distributed import run_on_main

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scenefake_prepare import prepare_scenefake  # noqa: E402

from lobes.dataio.dataset import make_datasets  # noqa: E402
from lobes.dataio.prepare import prepared_splits  # noqa: E402
from lobes.training.brain import SpoofBrain  # noqa: E402
from lobes.training.recipe import load_recipe, train_and_test  # noqa: E402


def check_test_sets(test_sets):
    """Validates the YAML's ``test_sets`` (name -> split) mapping.

    Example
    -------
    >>> check_test_sets({"seen": "eval", "dev": "test"})
    Traceback (most recent call last):
    ...
    ValueError: test set names ['dev'] clash with the training splits
    """
    if not test_sets:
        raise ValueError("test_sets is empty: name at least one test split")
    clash = sorted(set(test_sets) & {"train", "dev"})
    if clash:
        raise ValueError(f"test set names {clash} clash with the training splits")
    splits = list(test_sets.values())
    if len(set(splits)) != len(splits):
        raise ValueError(f"test_sets names the same split twice: {test_sets}")
    return dict(test_sets)


def present_test_sets(test_sets, splits):
    """The test sets whose split was prepared, in YAML order.

    Example
    -------
    >>> present_test_sets({"seen": "eval", "unseen": "test"}, ["train", "dev", "test"])
    {'unseen': 'test'}
    """
    return {name: split for name, split in test_sets.items() if split in splits}


def dataio_prep(hparams, test_sets):
    """Train, dev and one dataset per present test set."""
    return make_datasets(hparams, {"train": "train", "dev": "dev", **test_sets})


if __name__ == "__main__":
    hparams, run_opts = load_recipe()
    wanted = check_test_sets(hparams["test_sets"])
    run_on_main(
        prepare_scenefake,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["manifest_folder"],
            "test_splits": list(wanted.values()),
            "skip_missing": hparams["skip_missing_audio"],
        },
    )
    test_sets = present_test_sets(wanted, prepared_splits(hparams["manifest_folder"]))
    datasets = dataio_prep(hparams, test_sets)
    train_and_test(SpoofBrain, hparams, run_opts, datasets, test_sets=list(test_sets))
