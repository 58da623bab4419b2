"""The steps every recipe's ``train.py`` runs, so that each stays short."""

import contextlib
import sys

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml

from lobes.training.branched import brain_class_for
from lobes.training.distributed import DEFAULT_TIMEOUT_S, check_split_sizes, init_distributed
from lobes.training.options import OptionError, check_options, plain_hparams
from lobes.utils.safe_checkpoints import UnsafeCheckpointError


@contextlib.contextmanager
def refuse_unsafe_checkpoints():
    """Stops the recipe with one line naming a checkpoint file that is not a
    plain tensor archive (``lobes.utils.safe_checkpoints``), wherever it was
    met: in the SSL folder while the YAML builds the model, or in the run's
    checkpoints when training resumes or scoring loads the selected one."""
    try:
        yield
    except UnsafeCheckpointError as err:
        sys.exit(f"error: {err}")


def load_recipe(argv=None):
    """Parses the command line, loads the YAML and creates the output folder.

    Returns ``(hparams, run_opts)``; SpeechBrain's own flags (``--device``,
    ``--debug``, ``--precision``, ``--distributed_backend``, ...) land in
    ``run_opts``. Under ``torchrun`` the process joins the job's process
    group here (``lobes.training.distributed.init_distributed``, timeout
    ``ddp_timeout`` seconds), after the launch options have been checked.
    A wrong recipe option exits first, with a message naming it
    (``lobes.training.options``).
    """
    argv = sys.argv[1:] if argv is None else argv
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    try:  # in seconds, before the YAML builds any model (lobes.training.options)
        check_options(plain_hparams(hparams_file, overrides), hparams_file)
    except OptionError as err:
        sys.exit(f"error: {err}")
    with open(hparams_file, encoding="utf-8") as fin, refuse_unsafe_checkpoints():
        hparams = load_hyperpyyaml(fin, overrides)
    init_distributed(run_opts, hparams.get("ddp_timeout", DEFAULT_TIMEOUT_S))
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    return hparams, run_opts


def train_and_test(brain_class, hparams, run_opts, datasets, test_sets):
    """Trains on ``datasets["train"]``, selects on ``"dev"``, scores ``"dev"``
    (for calibration) and ``test_sets``.

    A rerun resumes from the last checkpoint; a finished run only re-scores.
    Under ``torchrun`` every split must give each rank a trial (checked
    before training), and every rank leaves the process group once all
    scores are written. Returns the brain.
    """
    check_split_sizes(datasets)
    brain = brain_class_for(brain_class, hparams)(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    with refuse_unsafe_checkpoints():
        brain.fit(
            brain.hparams.epoch_counter,
            datasets["train"],
            datasets["dev"],
            train_loader_kwargs=hparams["train_dataloader_opts"],
            valid_loader_kwargs=hparams["test_dataloader_opts"],
        )
        # The selected checkpoint scores dev first: its scores fit the calibration
        # applied to the test sets (lobes.evaluation.calibration).
        for name in ["dev", *(name for name in test_sets if name != "dev")]:
            brain.evaluate_set(datasets[name], name, hparams["test_dataloader_opts"])
    brain.leave_distributed()
    return brain
