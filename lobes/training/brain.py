"""The ``sb.Brain`` shared by every recipe.

A recipe's ``train.py`` subclasses ``SpoofBrain`` only to add dataset-specific
metrics (``test_metrics``). Expected hparams: ``compute_cost`` (the loss,
``lobes.models.losses``),
``selection_metric`` (``"EER"`` or ``"loss"``, on dev), ``output_folder``,
``train_logger``, ``checkpointer``, ``epoch_counter``; modules ``ssl``
(a ``LayerwiseSSL``) and ``head``.
"""

import os
import time

import speechbrain as sb
import torch
from speechbrain.utils.distributed import ddp_barrier, ddp_broadcast

from lobes.evaluation.bootstrap import DEFAULT_REPLICATES, record_intervals, trial_speakers
from lobes.evaluation.calibration import calibrated_test_outputs
from lobes.evaluation.metrics import record_metrics, records_eer
from lobes.evaluation.scores import write_scores
from lobes.evaluation.summary import print_summary
from lobes.models.assembly import branch_model, checked_plan
from lobes.models.branches import claim_branch_folders
from lobes.models.heads.registry import head_name
from lobes.training.branch_state import run_states
from lobes.training.distributed import (
    all_sum,
    ddp_wrap,
    if_main_process,
    leave_process_group,
    shard_sampler,
    unwrap,
    world_size,
)
from lobes.training.finite_guard import check_loss, check_metrics, check_parameters
from lobes.training.run_config import run_config
from lobes.utils.files import atomic_write_text
from lobes.utils.run_folder import add_test_set, discard_incomplete_checkpoints, rank_checkpoint, score_path


class SpoofBrain(sb.Brain):
    """Trains and scores an SSL + head countermeasure.

    Scores are the bona fide logit (higher = more bona fide). Dev EER and
    loss are logged every epoch with the layer weights; the checkpoint with
    the best dev ``selection_metric`` is kept and used for testing. Early
    stopping (an ``EpochCounterWithStopper``) watches the dev loss. With a
    frozen SSL, checkpoints hold only the fusion, the head and the
    optimizer.

    A run is its branch plan (the YAML's ``branches``,
    ``lobes.models.branches.plan_branches``), and every step runs the same
    way for each branch (``lobes.training.branch_state``): the encoder once
    (no grad when frozen), then each active branch's fusion, head, loss and
    backward one after another, so that one branch's graph is alive at a
    time. A single run is one branch, in the output folder itself. With
    ``n_layers: [2, 4, 6, 12]`` every depth is a branch on the shared frozen
    encoder pass, with its own dev selection, early stopping, checkpoints
    and outputs in ``<output_folder>/N<n>/``; with ``heads`` and/or
    ``init_seeds`` lists, every (head, depth, seed) is such a branch, in
    ``<output_folder>/<head>/N<n>/seed<s>/``. A branch that has stopped
    early is no longer run nor updated (its gradients stay None, which Adam
    skips). Each branch has its own optimizer, so that gradient clipping is
    per branch, as in a run of its own.

    Under ``torchrun`` (see docs/distributed.md), each
    rank trains on its shard (SpeechBrain's distributed samplers) and scores
    only its shard of dev and test; the score records are gathered by trial
    id, so every trial is scored once, rank 0 computes the metrics and
    broadcasts them (every rank then takes the same checkpoint and
    early-stopping decisions), and rank 0 alone writes outputs. With
    ``log_train_ids: True`` every rank lists the trials it trained on in
    ``<output_folder>/train_ids/epoch<e>_rank<r>.txt``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        plan = checked_plan(self.ssl, getattr(self.hparams, "branches", None))
        self.branches = {b.name: b for b in plan}
        self.branched = any(b.seed is not None for b in plan)  # (head, depth, seed) branches
        self.world_size = world_size()
        self.compute_seconds = {"encoder": 0.0, "heads": 0.0}
        self._refuse_unsupported_options()
        if self.branched:
            claim_branch_folders(self.hparams.output_folder, plan, write=if_main_process())
        models = {name: branch_model(self.ssl, self.modules.head, name) for name in self.branches}
        self.states = run_states(
            plan, self.hparams.output_folder, self.checkpointer, self.hparams.epoch_counter, models
        )
        self.encoder = self.ssl.encoder  # what runs the encoder pass (its DDP wrapper when fine-tuned)

    def _refuse_unsupported_options(self):
        """SpeechBrain options that act on ``modules`` and hooks that a
        subclass would expect in training: the training step runs each
        branch's model and the encoder instead (``fit_batch``), so these
        would silently do nothing; refused at start-up."""
        if self.data_parallel_backend:
            raise ValueError("--data_parallel_backend is not supported: start the recipe with torchrun "
                             "instead (docs/distributed.md)")
        if self.compile or self.jit:
            raise ValueError("--compile and --jit are not supported in training; for fast scoring use "
                             "python -m lobes.detect --backend compile (docs/scoring.md)")
        if type(self).compute_forward is not SpoofBrain.compute_forward:
            raise TypeError(f"{type(self).__name__} overrides compute_forward, which training does not "
                            "call (it runs the encoder once, then each branch): override branch_forward")

    @property
    def ssl(self):
        """The ``LayerwiseSSL`` or ``MultiDepthSSL`` (never DDP-wrapped: the
        training step runs the encoder and each branch's model, which are)."""
        return self.modules.ssl

    def _wrap_distributed(self):
        """Under torchrun, when training starts: one DDP wrapper per branch,
        and one for a fine-tuned encoder, registered in ``modules`` so that
        SpeechBrain's ``no_sync`` reaches them (the YAML's modules
        themselves are not what the training step calls). Every parameter of
        a branch's wrapper is used whenever it runs, and a stopped branch's
        wrapper simply runs no more. SpeechBrain's SyncBatchNorm conversion
        is left out: SyncBatchNorm runs on GPUs only, and it would replace
        the fusion's masked BatchNorm (whose statistics skip padded frames)
        with a plain one; BatchNorm statistics are per rank, as in a
        single-process run."""
        if not self.distributed_launch:
            return
        for index, state in enumerate(self.states.values()):
            state.model = self.modules[f"branch{index}"] = ddp_wrap(
                state.model, self.device, find_unused_parameters=self.find_unused_parameters
            )
        if any(p.requires_grad for p in self.encoder.parameters()):
            self.encoder = self.modules["encoder"] = ddp_wrap(
                self.encoder, self.device, find_unused_parameters=self.find_unused_parameters
            )

    def leave_distributed(self):
        """Ends this rank's part in a torchrun job once every score is
        written: the DDP wrappers, which hold the process group, give way to
        their modules, then every rank leaves the group
        (``lobes.training.distributed.leave_process_group`` says why). A
        no-op in a single process; the brain can still score afterwards,
        each process on its own."""
        for name, module in list(self.modules.items()):
            self.modules[name] = unwrap(module)
        for state in self.states.values():
            state.model = unwrap(state.model)
        self.encoder = unwrap(self.encoder)
        leave_process_group()

    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """Under torchrun, dev and test loaders get this rank's shard."""
        sharded = stage != sb.Stage.TRAIN and not (
            loader_kwargs.get("sampler") or loader_kwargs.get("batch_sampler")
        )
        sampler = shard_sampler(dataset) if sharded else None
        if sampler is not None:
            loader_kwargs = {**loader_kwargs, "sampler": sampler, "shuffle": False}
        return super().make_dataloader(dataset, stage, ckpt_prefix, **loader_kwargs)

    def active_branches(self, stage):
        """Branches to run: all for testing; those not stopped early for
        training and dev (a stopped branch's selection is final)."""
        return [name for name, state in self.states.items() if stage == sb.Stage.TEST or not state.stopped]

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

    def encoder_pass(self, batch, stage):
        """The encoder pass all branches share: stacked layers, relative
        frame lengths and the frame mask (``LayerwiseSSL.features``)."""
        wavs, wav_lens = batch.to(self.device).sig
        encoder = self.encoder if stage == sb.Stage.TRAIN else unwrap(self.encoder)
        return self.ssl.features(wavs, wav_lens, encoder)

    def branch_forward(self, name, shared, stage):
        """Branch ``name``'s logits (B, 2) ordered [spoof, bonafide] from the
        shared encoder pass. Training runs its DDP wrapper; scoring runs the
        module itself: no DDP collective runs in a dev or test forward pass,
        whose shards may differ in batch count."""
        layers, frame_lens, mask = shared
        model = self.states[name].model
        model = model if stage == sb.Stage.TRAIN else unwrap(model)
        return model(layers, mask, frame_lens)

    def compute_forward(self, batch, stage):
        """Waveforms -> ``{branch: branch_forward(...)}`` of the active branches."""
        shared = self.encoder_pass(batch, stage)
        return {name: self.branch_forward(name, shared, stage) for name in self.active_branches(stage)}

    def fit_batch(self, batch):
        """SpeechBrain's training step, branch by branch: the encoder once,
        then forward and backward of each active branch in turn (memory: the
        shared layers plus one branch's graph), then one optimizer step.
        Notes the trial ids with ``log_train_ids``."""
        self.batch_ids = batch.id  # named if the loss or a parameter turns NaN
        if getattr(self.hparams, "log_train_ids", False):
            self.train_ids.extend(batch.id)
        should_step = (self.step % self.grad_accumulation_factor) == 0
        self.on_fit_batch_start(batch, should_step)
        total = torch.zeros((), device=self.device)
        with self.no_sync(not should_step):
            with self.training_ctx:
                shared = self._timed("encoder", self.encoder_pass, batch, sb.Stage.TRAIN)
            for name in self.active_branches(sb.Stage.TRAIN):
                total = total + self._timed("heads", self._fit_branch, name, batch, shared)
        if should_step:
            self.optimizers_step()
        self.on_fit_batch_end(batch, None, total, should_step)
        return total.detach().cpu()

    def _fit_branch(self, name, batch, shared):
        """Forward and backward of one branch on the shared layers; its loss."""
        with self.training_ctx:
            outputs = self.branch_forward(name, shared, sb.Stage.TRAIN)
            loss = self.compute_objectives({name: outputs}, batch, sb.Stage.TRAIN)
        scaled = self.scaler.scale(loss / self.grad_accumulation_factor)
        self.check_loss_isfinite(scaled)
        scaled.backward()
        return loss.detach()

    def check_loss_isfinite(self, loss):
        """Stops at the first non-finite loss, naming the batch (SpeechBrain
        would skip up to ``nonfinite_patience`` such steps)."""
        check_loss(loss, self.batch_ids, self.hparams.epoch_counter.current)

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Stops when a step made a trainable parameter NaN or inf."""
        if should_step:
            check_parameters(self.modules, batch.id, self.hparams.epoch_counter.current)

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

    def init_optimizers(self):
        """Gives each branch an optimizer of its trainable parameters (with
        a fine-tuned encoder's, whose run has one branch), so that
        SpeechBrain's gradient clipping (per optimizer, ``max_grad_norm``)
        never couples branches. A single run's optimizer keeps
        SpeechBrain's recoverable name, ``optimizer``."""
        if self.opt_class is None:
            return
        encoder = []  # a frozen encoder's
        if not self.ssl.encoder.freeze:
            # The fine-tuned parameters, and those no layer uses: frozen
            # (TruncatedSSLEncoder) but kept in the optimizer, where runs trained
            # before had them: a checkpoint's optimizer state must match to resume.
            unused = {id(p) for p in self.ssl.encoder.parameters_outside_the_layers()}
            encoder = [p for p in self.ssl.encoder.parameters() if p.requires_grad or id(p) in unused]
        for name, state in self.states.items():
            params = encoder + [p for p in unwrap(state.model).parameters() if p.requires_grad]
            state.optimizer = self.opt_class(params)
            if self.checkpointer is not None:
                key = "optimizer" if name is None else f"optimizer_{name.replace('/', '_')}"
                self.checkpointer.add_recoverable(key, state.optimizer)
        # SpeechBrain's key for a single run's optimizer, the branch names otherwise.
        self.optimizers_dict = {name or "opt_class": state.optimizer for name, state in self.states.items()}
        self.optimizer = next(iter(self.optimizers_dict.values()))
        # Last step before SpeechBrain resumes, once every recoverable is known:
        # set aside the checkpoints a crash left half-written.
        # (A single run's branch checkpointer is the run's own: a set, each once.)
        for checkpointer in {self.checkpointer, *(state.checkpointer for state in self.states.values())}:
            if checkpointer is not None:
                discard_incomplete_checkpoints(checkpointer)

    def on_stage_start(self, stage, epoch=None):
        """Starts fresh score collections for dev and test."""
        for state in self.states.values():
            state.start_stage()
        self.n_scored_batches = 0
        self.train_ids = []

    def gather_stage_outputs(self):
        """Gathers all ranks' dev/test outputs (a no-op in one process):
        score records by trial id, each trial once; losses summed over all
        ranks' batches. Subclasses with more outputs extend this."""
        states = list(self.states.values())
        for state in states:
            state.gather()
        *losses, n_batches = all_sum([state.loss for state in states] + [self.n_scored_batches])
        for state, loss in zip(states, losses):
            state.loss = loss
        self.n_scored_batches = int(n_batches)

    def _write_train_ids(self, epoch):
        rank = int(os.environ.get("RANK", 0))
        path = os.path.join(self.hparams.output_folder, "train_ids", f"epoch{epoch}_rank{rank}.txt")
        atomic_write_text(path, "".join(f"{utt_id}\n" for utt_id in self.train_ids))

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs, selects checkpoints, and writes test outputs."""
        if stage == sb.Stage.TRAIN:
            if getattr(self.hparams, "log_train_ids", False):
                self._write_train_ids(epoch)
            # The mean over ranks (each rank's loss is over its shard).
            self.train_loss = all_sum([stage_loss])[0] / self.world_size
            return
        self.gather_stage_outputs()
        branch_metrics = None
        if if_main_process():
            branch_metrics = {
                name: {
                    "EER": records_eer(self.states[name].records),
                    "loss": self.states[name].loss / max(self.n_scored_batches, 1),
                }
                for name in self.active_branches(stage)
            }
        if stage == sb.Stage.VALID:
            # Computed once, on rank 0; every rank decides from the same figures.
            branch_metrics = ddp_broadcast(branch_metrics, src=0)
            self._log_epoch(epoch, branch_metrics)
            self._select_and_stop(epoch, branch_metrics)
            return
        if if_main_process():
            for name in self.states:
                self._write_test_outputs(name, branch_metrics[name]["loss"])
        ddp_barrier()

    def _log_epoch(self, epoch, branch_metrics):
        meta, valid = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}, {}
        if self.branched:
            # Training compute so far: the shared encoder and all branches.
            meta.update({f"{k}_s": round(v, 2) for k, v in self.compute_seconds.items()})
        for name, metrics in branch_metrics.items():
            prefix = "" if name is None else f"{name} "
            weights = self.branch_layer_weights(name).tolist()
            meta[f"{prefix}layer_weights"] = " ".join(f"{w:.4f}" for w in weights)
            valid[f"{prefix}loss"] = metrics["loss"]
            valid[f"{prefix}EER"] = metrics["EER"]
        self.hparams.train_logger.log_stats(
            stats_meta=meta, train_stats={"loss": self.train_loss}, valid_stats=valid
        )

    def branch_layer_weights(self, name):
        """Branch ``name``'s normalised fusion weights, layer 1 first."""
        return self.ssl.branch_fusion(name).layer_weights()

    def _select_and_stop(self, epoch, branch_metrics):
        """Keeps each branch's best checkpoint; early stopping on dev loss
        (the paper's rule), per branch; the run stops when all branches have."""
        for name, metrics in branch_metrics.items():  # never save a NaN checkpoint
            check_metrics(metrics, epoch, name)
        for name, metrics in branch_metrics.items():
            self.states[name].select(epoch, metrics, self.checkpoint_rank)
        if all(state.own_counter for state in self.states.values()):
            # Branches keep their best models in their own folders; the run's
            # checkpoint holds their stoppers, the optimizers and the epoch to resume from.
            self.checkpointer.save_and_keep_only(meta={"epoch": epoch})
        if all(state.stopped for state in self.states.values()):
            self.hparams.epoch_counter.should_stop = True

    def checkpoint_rank(self, checkpoint):
        """Ranks checkpoints with ``rank_checkpoint`` (higher is better)."""
        return rank_checkpoint(checkpoint.meta, self.hparams.selection_metric)

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Loads each branch's best checkpoint; never scores an untrained model."""
        for state in self.states.values():
            state.load_best(self.checkpoint_rank)

    def test_metrics(self, records):
        """Metrics of one test set; recipes extend this.

        Returns a dict with ``eer`` (%), trial counts, ``eer_by_attack`` (%)
        and the ASVspoof 5 costs of the raw scores (``min_dcf``, ``act_dcf``,
        ``cllr``; see ``lobes.evaluation.metrics.record_metrics``).
        """
        return record_metrics(records)

    def extra_test_outputs(self, records, folder):
        """Hook for recipe-specific files beside the score file (e.g. a
        challenge submission format) in ``folder``, the output folder of the
        run or depth. Returns entries to add to the test set's results."""
        return {}

    def evaluate_set(self, dataset, name, loader_kwargs=None):
        """Scores ``dataset`` with the selected checkpoint as test set ``name``
        (available to ``test_metrics`` as ``self.test_name``).

        Writes ``scores/<name>.txt`` and adds the metrics to ``results.json``
        in the output folder of each branch (the run's own for a single run).
        """
        self.test_name = name
        self.test_speakers = trial_speakers(dataset)  # clusters of the bootstrap intervals
        return self.evaluate(dataset, test_loader_kwargs=loader_kwargs or {})

    def _write_test_outputs(self, branch, loss):
        name = getattr(self, "test_name", "test")
        state = self.states[branch]
        records, folder = state.records, state.folder
        score_file = score_path(folder, name)
        write_scores(score_file, records)
        metrics = {"loss": loss, **self.test_metrics(records), "score_file": score_file}
        metrics.update(self.extra_test_outputs(records, folder))
        # Dev fits the calibration; other sets get scores/<name>.calibrated.txt.
        prior = getattr(self.hparams, "calibration_prior", None)
        metrics.update(calibrated_test_outputs(records, folder, name, prior))
        metrics["intervals"] = record_intervals(
            records, getattr(self, "test_speakers", None), metrics.get("calibration"),
            replicates=getattr(self.hparams, "bootstrap_replicates", DEFAULT_REPLICATES),
        )

        selected = state.best_checkpoint(self.checkpoint_rank).meta
        results = add_test_set(
            folder, name, metrics,
            config=run_config(self.hparams, self.branches[branch], head_name(type(unwrap(state.model).head))),
            layer_weights=self.branch_layer_weights(branch).tolist(),
            selected_checkpoint={k: v for k, v in selected.items() if k != "unixtime"},
        )
        title = name if branch is None else f"{name} ({branch})"
        print_summary(title, metrics, results["layer_weights"])
