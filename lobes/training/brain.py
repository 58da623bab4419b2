"""The ``sb.Brain`` shared by every recipe.

A recipe's ``train.py`` subclasses ``SpoofBrain`` only to add dataset-specific
metrics (``test_metrics``). Expected hparams: ``compute_cost`` (the loss,
``lobes.models.losses``),
``selection_metric`` (``"EER"`` or ``"loss"``, on dev), ``output_folder``,
``train_logger``, ``checkpointer``, ``epoch_counter``; modules ``ssl``
(a ``LayerwiseSSL``) and ``head``.
"""

import os

import speechbrain as sb
from speechbrain.utils.distributed import ddp_barrier, ddp_broadcast

from lobes.evaluation.bootstrap import DEFAULT_REPLICATES, record_intervals, trial_speakers
from lobes.evaluation.calibration import calibrated_test_outputs
from lobes.evaluation.metrics import record_metrics, records_eer
from lobes.evaluation.scores import write_scores
from lobes.evaluation.summary import print_summary
from lobes.models.assembly import branch_model, checked_plan
from lobes.models.branches import BRANCHED, claim_branch_folders
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
from lobes.utils.run_folder import SINGLE_RUN, add_test_set, discard_incomplete_checkpoints, rank_checkpoint, score_path
from lobes.utils.safe_checkpoints import use_safe_load_hooks

# Every checkpoint the Brain resumes from is read as tensors only.
use_safe_load_hooks()

class SpoofBrain(sb.Brain):
    """Trains and scores an SSL + head countermeasure.

    Scores are the bona fide logit (higher = more bona fide). Dev EER and
    loss are logged every epoch with the layer weights; the checkpoint with
    the best dev ``selection_metric`` is kept and used for testing. Early
    stopping (an ``EpochCounterWithStopper``) watches the dev loss. With a
    frozen SSL, checkpoints hold only the fusion, the head and the
    optimizer.

    One model's step is SpeechBrain's: ``compute_forward`` (waveforms ->
    truncated encoder -> layer fusion -> head -> logits) and
    ``compute_objectives`` (the YAML's ``compute_cost``), run by
    SpeechBrain's ``fit_batch``; a recipe's Brain may override either. A run
    of several branches on one frozen encoder pass (``n_layers: [2, 4, 6,
    12]``, ``heads`` or ``init_seeds`` lists; ``lobes.models.branches``)
    trains with ``lobes.training.branched.BranchedTraining``'s step, which
    ``brain_class_for`` adds from the YAML's plan. Everything else runs per
    branch (``lobes.training.branch_state``): each has its own dev
    selection, early stopping, checkpoints, optimizer (gradient clipping is
    per branch, as in a run of its own) and outputs, in
    ``<output_folder>/N<n>/`` or ``<output_folder>/<head>/N<n>/seed<s>/``; a
    single run's are the output folder itself. A branch that has stopped
    early is no longer run nor updated.

    Under ``torchrun`` (see docs/distributed.md), each
    rank trains on its shard (SpeechBrain's distributed samplers) and scores
    only its shard of dev and test; the score records are gathered by trial
    id, so every trial is scored once, rank 0 computes the metrics and
    broadcasts them (every rank then takes the same checkpoint and
    early-stopping decisions), and rank 0 alone writes outputs. With
    ``log_train_ids: True`` every rank lists the trials it trained on in
    ``<output_folder>/train_ids/epoch<e>_rank<r>.txt``.
    """

    # Whether this Brain has the step of several branches (``BranchedTraining``).
    trains_branches = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        plan = checked_plan(self.ssl, getattr(self.hparams, "branches", None))
        self.branches = {b.name: b for b in plan}
        self.branched = any(b.kind == BRANCHED for b in plan)  # (head, depth, seed) branches
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
        """SpeechBrain options that act on ``modules``: the training step
        runs the encoder and the branch models (DDP-wrapped on their own)
        instead, so these would silently do nothing; refused at start-up.
        A plan of several branches needs ``BranchedTraining``'s step."""
        if self.data_parallel_backend:
            raise ValueError("--data_parallel_backend is not supported: start the recipe with torchrun "
                             "instead (docs/distributed.md)")
        if self.compile or self.jit:
            raise ValueError("--compile and --jit are not supported in training; for fast scoring use "
                             "python -m lobes.detect --backend compile (docs/scoring.md)")
        if len(self.branches) > 1 and not self.trains_branches:
            raise TypeError(
                f"the YAML plans {len(self.branches)} branches (n_layers, heads or init_seeds lists): "
                f"build the Brain with lobes.training.branched.brain_class_for({type(self).__name__}, hparams)"
            )

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

    def encoder_pass(self, batch, stage):
        """The encoder's stacked layers 1..N (B, N, T, C), relative frame
        lengths and frame mask (``LayerwiseSSL.features``). Training runs a
        fine-tuned encoder's DDP wrapper; scoring runs the module itself."""
        wavs, wav_lens = batch.to(self.device).sig
        encoder = self.encoder if stage == sb.Stage.TRAIN else unwrap(self.encoder)
        return self.ssl.features(wavs, wav_lens, encoder)

    def model(self, stage, name=SINGLE_RUN):
        """Fusion and head (a ``BranchModel``) of branch ``name`` (by default
        a single run's one model). Training runs its DDP wrapper; scoring runs the
        module itself: no DDP collective runs in a dev or test forward pass,
        whose shards may differ in batch count."""
        model = self.states[name].model
        return model if stage == sb.Stage.TRAIN else unwrap(model)

    def compute_forward(self, batch, stage):
        """Waveforms -> truncated encoder -> layer fusion -> head: logits
        (B, 2) ordered [spoof, bonafide]."""
        layers, frame_lens, mask = self.encoder_pass(batch, stage)
        return self.model(stage)(layers, mask, frame_lens)

    def compute_objectives(self, predictions, batch, stage):
        """The YAML's loss, ``compute_cost(logits, labels)``; on dev and test
        the bona fide logits are kept as the trials' scores."""
        labels = batch.label_index.to(self.device)
        loss = self.hparams.compute_cost(predictions, labels)
        if stage != sb.Stage.TRAIN:
            self.states[SINGLE_RUN].record(batch, predictions[:, 1], loss)
            self.n_scored_batches += 1
        return loss

    def on_fit_batch_start(self, batch, should_step):
        """Notes the batch's trial ids: named if the loss or a parameter
        turns NaN, and listed with ``log_train_ids``."""
        self.batch_ids = batch.id
        if getattr(self.hparams, "log_train_ids", False):
            self.train_ids.extend(batch.id)

    def check_loss_isfinite(self, loss):
        """Stops at the first non-finite loss, naming the batch (SpeechBrain
        would skip up to ``nonfinite_patience`` such steps)."""
        check_loss(loss, self.batch_ids, self.hparams.epoch_counter.current)

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Stops when a step made a trainable parameter NaN or inf."""
        if should_step:
            check_parameters(self.modules, batch.id, self.hparams.epoch_counter.current)

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
                key = "optimizer" if name == SINGLE_RUN else f"optimizer_{name.replace('/', '_')}"
                self.checkpointer.add_recoverable(key, state.optimizer)
        # SpeechBrain's key for a single run's optimizer, the branch names otherwise.
        self.optimizers_dict = {
            "opt_class" if name == SINGLE_RUN else name: state.optimizer for name, state in self.states.items()
        }
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
            prefix = "" if name == SINGLE_RUN else f"{name} "
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
            check_metrics(metrics, epoch, None if name == SINGLE_RUN else name)
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
        title = name if branch == SINGLE_RUN else f"{name} ({branch})"
        print_summary(title, metrics, results["layer_weights"])
