"""What one branch of a run owns while it trains and scores.

A run is a set of branches: one for a single-depth run (name ``"."``, the
run's own folder, checkpointer and epoch counter), one per depth of a
multi-depth run, one per (head, depth, seed) of a branched run (see
``lobes.models.branches``). Each ``BranchState`` holds the branch's folder,
its checkpointer (which keeps its best checkpoint), its early stopper, its
model (possibly in a DDP wrapper), its optimizer and the scores of the dev
or test stage being run, so that ``SpoofBrain`` runs the same steps for
every branch instead of forking between single and multi-branch runs.
"""

import logging
import os

from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.epoch_loop import EpochCounterWithStopper

from lobes.evaluation.scores import ScoreRecord
from lobes.models.branches import SINGLE
from lobes.training.distributed import gather_unique
from lobes.training.finite_guard import check_metrics
from lobes.utils.choices import SELECTION_METRICS
from lobes.utils.run_folder import SAVE_DIR

logger = logging.getLogger(__name__)


class BranchState:
    """One branch's checkpointer, stopper, model and stage scores.

    Arguments
    ---------
    name : str
        The branch name (``"N4"``, ``"ffn/N4/seed1"``), ``"."`` for a single run.
    folder : str
        Its output folder (scores, ``results.json``, ``save/``).
    checkpointer : speechbrain.utils.checkpoints.Checkpointer
        Keeps its best checkpoint (the run's own one for a single run).
    stopper : speechbrain.utils.epoch_loop.EpochCounter
        Its early stopping (the run's epoch counter for a single run; a plain
        ``EpochCounter`` never stops early).
    model : torch.nn.Module, optional
        Its ``BranchModel`` (fusion and head; in a DDP wrapper under torchrun).
    own_counter : bool
        True when the stopper is the branch's own and must be told the epoch
        (branches of a run); False when it is the run's epoch counter.

    Example
    -------
    >>> from speechbrain.utils.epoch_loop import EpochCounter
    >>> state = BranchState("N2", "out/N2", checkpointer=None, stopper=EpochCounter(3))
    >>> state.stopped
    False
    """

    def __init__(self, name, folder, checkpointer, stopper, model=None, own_counter=False):
        self.name = name
        self.folder = folder
        self.checkpointer = checkpointer
        self.stopper = stopper
        self.model = model
        self.own_counter = own_counter
        self.optimizer = None  # set by the Brain's init_optimizers
        self.start_stage()

    @property
    def stopped(self):
        """True once early stopping ended this branch's training."""
        return bool(getattr(self.stopper, "should_stop", False))

    def start_stage(self):
        """Empties the dev/test collection (score records and summed loss)."""
        self.records, self.loss = [], 0.0

    def record(self, batch, scores, loss):
        """Adds a scored batch: one ``ScoreRecord`` per trial, and its loss."""
        self.loss += float(loss)
        scores = scores.detach().float().cpu().tolist()
        self.records.extend(
            ScoreRecord(utt_id, attack, key, score)
            for utt_id, attack, key, score in zip(batch.id, batch.attack, batch.key, scores)
        )

    def gather(self):
        """Every rank's records, each trial once (a no-op in one process)."""
        self.records = gather_unique(self.records, key=lambda r: r.utt_id)

    def select(self, epoch, metrics, rank):
        """Ends a dev stage (``metrics``: finite dev ``EER`` and ``loss``):
        tells the stopper the dev loss and saves a checkpoint, of which the
        best by ``rank`` (and, for a single run, the latest, to resume from)
        are kept."""
        update = getattr(self.stopper, "update_metric", None)
        if self.own_counter:
            self.stopper.current = epoch
        if update is not None:
            update(metrics["loss"])
        # A branch's own checkpointer keeps its best model only; the run's
        # checkpointer also keeps the latest, which resuming starts from.
        self.checkpointer.save_and_keep_only(
            meta={**metrics, "epoch": epoch}, importance_keys=[rank], keep_recent=not self.own_counter
        )

    def best_checkpoint(self, rank):
        """The checkpoint ``rank`` prefers; never an untrained model."""
        found = self.checkpointer.find_checkpoint(importance_key=rank)
        if found is None:
            raise FileNotFoundError(f"no checkpoint in {self.checkpointer.checkpoints_dir}: train the model first")
        return found

    def load_best(self, rank):
        """Loads the selected checkpoint, refusing one with NaN figures."""
        found = self.best_checkpoint(rank)
        check_metrics(
            {k: found.meta[k] for k in SELECTION_METRICS if k in found.meta},
            found.meta.get("epoch"),
            f"checkpoint {found.path}",
        )
        logger.info("loading the selected checkpoint %s", found.path)
        self.checkpointer.load_checkpoint(found)  # the one found: no second listing


def run_states(plan, output_folder, run_checkpointer, epoch_counter, models):
    """``{name: BranchState}`` for every branch of a run's ``plan``.

    A single run's branch (name ".") is the run itself: the output folder,
    the run's checkpointer and epoch counter. Any other branch gets a
    folder inside the output folder, a checkpointer of its own there (its
    fusion and head: its best model only) and an early stopper of the
    epoch counter's limits, which the run's checkpointer saves (so that a
    resumed run knows which branches have stopped).

    Arguments
    ---------
    plan : list of lobes.models.branches.Branch
        The run's branches.
    output_folder : str
        The run's output folder.
    run_checkpointer : speechbrain.utils.checkpoints.Checkpointer
        The run's checkpointer (the YAML's ``checkpointer``).
    epoch_counter : speechbrain.utils.epoch_loop.EpochCounter
        The run's epoch counter (the YAML's ``epoch_counter``).
    models : dict
        ``{name: BranchModel}`` of every branch.
    """
    states = {}
    for branch in plan:
        model = models[branch.name]
        if branch.kind == SINGLE:
            states[branch.name] = BranchState(branch.name, output_folder, run_checkpointer, epoch_counter, model)
            continue
        folder = os.path.join(output_folder, branch.name)
        checkpointer = Checkpointer(
            os.path.join(folder, SAVE_DIR), recoverables={"fusion": model.fusion, "head": model.head}
        )
        stopper = EpochCounterWithStopper(
            limit=epoch_counter.limit,
            limit_to_stop=getattr(epoch_counter, "limit_to_stop", epoch_counter.limit),
            limit_warmup=0,
            direction="min",
        )
        # Recoverable names become file names: no "/" of branch names.
        run_checkpointer.add_recoverable(f"stopper_{branch.name.replace('/', '_')}", stopper)
        states[branch.name] = BranchState(branch.name, folder, checkpointer, stopper, model, own_counter=True)
    return states
