"""The training step of a run of several branches on one encoder pass.

A multi-depth or branched run (``n_layers``, ``heads`` or ``init_seeds``
lists in the YAML; ``lobes.models.branches``) trains every (head, depth,
seed) branch on the same frozen encoder output. ``BranchedTraining`` gives a
recipe's Brain that step: the encoder once, then each active branch's fusion,
head, loss and backward in turn, so that one branch's graph is alive at a
time. Everything else (checkpoints, selection, early stopping, outputs) is
``SpoofBrain``'s, which runs it per branch. ``brain_class_for`` is the one
place that chooses, from the YAML's plan, whether a run needs it.
"""

import time

import speechbrain as sb
import torch

from lobes.models.assembly import checked_plan
from lobes.models.branches import is_single_run
from lobes.training.brain import SpoofBrain

# A recipe Brain that overrides these runs one model's step, which a run of
# several branches does not call.
SINGLE_MODEL_STEP = ("compute_forward", "compute_objectives", "fit_batch")


class BranchedTraining:
    """Mixed in before a ``SpoofBrain`` subclass for a plan of several
    branches: ``compute_forward`` gives ``{branch: logits}`` and
    ``fit_batch`` runs the encoder once for all of them."""

    trains_branches = True

    def _timed(self, key, fn, *args):
        """``fn(*args)``, adding its time to ``compute_seconds[key]`` in a
        branched run (which logs it; timing synchronises the GPU)."""
        if not self.branched:
            return fn(*args)
        start = time.perf_counter()
        out = fn(*args)
        if self.device != "cpu" and torch.cuda.is_available():
            torch.cuda.synchronize()
        self.compute_seconds[key] += time.perf_counter() - start
        return out

    def branch_forward(self, name, shared, stage):
        """Branch ``name``'s logits (B, 2) ordered [spoof, bonafide] from the
        shared encoder pass. Training runs its DDP wrapper; scoring runs the
        module itself: no DDP collective runs in a dev or test forward pass,
        whose shards may differ in batch count."""
        layers, frame_lens, mask = shared
        return self.model(stage, name)(layers, mask, frame_lens)

    def compute_forward(self, batch, stage):
        """Waveforms -> ``{branch: branch_forward(...)}`` of the active branches."""
        shared = self.encoder_pass(batch, stage)
        return {name: self.branch_forward(name, shared, stage) for name in self.active_branches(stage)}

    def compute_objectives(self, predictions, batch, stage):
        """The YAML's ``compute_cost(logits, labels)`` summed over branches
        (their parameters are disjoint, so each branch trains as if alone);
        collects scores."""
        labels = batch.label_index.to(self.device)
        total = 0.0
        for name, logits in predictions.items():
            loss = self.hparams.compute_cost(logits, labels)
            total = total + loss
            if stage != sb.Stage.TRAIN:
                self.states[name].record(batch, logits[:, 1], loss)
        if stage != sb.Stage.TRAIN:
            self.n_scored_batches += 1
        return total

    def fit_batch(self, batch):
        """SpeechBrain's training step, branch by branch: the encoder once,
        then forward and backward of each active branch in turn (memory: the
        shared layers plus one branch's graph), then one optimizer step."""
        should_step = (self.step % self.grad_accumulation_factor) == 0
        self.on_fit_batch_start(batch, should_step)
        total = torch.zeros((), device=self.device)
        with self.no_sync(not should_step):
            with self.training_ctx:
                shared = self._timed("encoder", self.encoder_pass, batch, sb.Stage.TRAIN)
            for name in self.active_branches(sb.Stage.TRAIN):
                total = total + self._timed("heads", self.fit_branch, name, batch, shared)
        if should_step:
            self.optimizers_step()
        self.on_fit_batch_end(batch, None, total, should_step)
        return total.detach().cpu()

    def fit_branch(self, name, batch, shared):
        """Forward and backward of one branch on the shared layers; its loss."""
        with self.training_ctx:
            outputs = self.branch_forward(name, shared, sb.Stage.TRAIN)
            loss = self.compute_objectives({name: outputs}, batch, sb.Stage.TRAIN)
        scaled = self.scaler.scale(loss / self.grad_accumulation_factor)
        self.check_loss_isfinite(scaled)
        scaled.backward()
        return loss.detach()



def brain_class_for(brain_class, hparams):
    """The Brain class that trains the YAML's plan: ``brain_class`` itself
    for one model; for several branches, ``brain_class`` with
    ``BranchedTraining``'s step (named ``Branched<brain_class>``).

    A ``brain_class`` that overrides the one-model step (``compute_forward``,
    ``compute_objectives`` or ``fit_batch``) trains single runs only: a run
    of several branches is refused, naming the method.
    """
    plan = checked_plan(hparams["modules"]["ssl"], hparams.get("branches"))
    if is_single_run(plan):
        return brain_class
    overridden = [m for m in SINGLE_MODEL_STEP if getattr(brain_class, m) is not getattr(SpoofBrain, m)]
    if overridden:
        raise TypeError(
            f"{brain_class.__name__} overrides {', '.join(overridden)}, the step of one model; the YAML plans "
            f"{len(plan)} branches (n_layers, heads or init_seeds lists), which train with their own step: "
            "give n_layers one value and leave heads and init_seeds null"
        )
    return type(f"Branched{brain_class.__name__}", (BranchedTraining, brain_class), {"__doc__": brain_class.__doc__})
