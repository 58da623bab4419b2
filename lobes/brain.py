"""The ``sb.Brain`` shared by every recipe.

A recipe's ``train.py`` subclasses ``SpoofBrain`` only to add dataset-specific
metrics (``test_metrics``). Expected hparams: ``class_weights``,
``selection_metric`` (``"EER"`` or ``"loss"``, on dev), ``output_folder``,
``train_logger``, ``checkpointer``, ``epoch_counter``; modules ``ssl``
(a ``LayerwiseSSL``) and ``head``.
"""

import json
import logging
import os

import numpy as np
import speechbrain as sb
import torch
import torch.nn.functional as F

from lobes.metrics import compute_eer, eer_by_group
from lobes.scores import ScoreRecord, atomic_write_text, write_scores

logger = logging.getLogger(__name__)

# hparams copied into results.json so every result says how it was made.
RUN_CONFIG_KEYS = (
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
)


class SpoofBrain(sb.Brain):
    """Trains and scores an SSL + head countermeasure.

    Scores are the bona fide logit (higher = more bona fide). Dev EER and
    loss are logged every epoch with the layer weights; the checkpoint with
    the best dev ``selection_metric`` is kept and used for testing. Early
    stopping (an ``EpochCounterWithStopper``) watches the dev loss. With a
    frozen SSL, checkpoints hold only the fusion, the head and the
    optimizer.
    """

    def compute_forward(self, batch, stage):
        """Waveforms -> logits (B, 2) ordered [spoof, bonafide]."""
        batch = batch.to(self.device)
        wavs, wav_lens = batch.sig
        feats, feat_lens = self.modules.ssl(wavs, wav_lens)
        return self.modules.head(feats, feat_lens)

    def compute_objectives(self, predictions, batch, stage):
        """Weighted cross-entropy; collects scores outside training."""
        labels = batch.label_index.to(self.device)
        weights = torch.tensor(self.hparams.class_weights, device=self.device, dtype=torch.float)
        loss = F.cross_entropy(predictions.float(), labels, weight=weights)
        if stage != sb.Stage.TRAIN:
            scores = predictions[:, 1].detach().float().cpu().tolist()
            self.score_records.extend(
                ScoreRecord(utt_id, attack, key, score)
                for utt_id, attack, key, score in zip(batch.id, batch.attack, batch.key, scores)
            )
        return loss

    def init_optimizers(self):
        """Gives the optimizer the trainable parameters only."""
        if self.opt_class is None:
            return
        params = [p for p in self.modules.parameters() if p.requires_grad]
        self.optimizer = self.opt_class(params)
        self.optimizers_dict = {"opt_class": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)

    def on_stage_start(self, stage, epoch=None):
        """Starts a fresh score collection for dev and test."""
        self.score_records = []

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs, selects checkpoints, and writes test outputs."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        if stage == sb.Stage.VALID:
            eer = self._records_eer(self.score_records)
            weights = self.modules.ssl.layer_weights().tolist()
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "epoch": epoch,
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "layer_weights": " ".join(f"{w:.4f}" for w in weights),
                },
                train_stats={"loss": self.train_loss},
                valid_stats={"loss": stage_loss, "EER": eer * 100},
            )
            # Early stopping follows the paper: patience on dev loss.
            stopper = getattr(self.hparams.epoch_counter, "update_metric", None)
            if stopper is not None:
                stopper(stage_loss)
            self.checkpointer.save_and_keep_only(
                meta={"EER": eer * 100, "loss": stage_loss, "epoch": epoch},
                importance_keys=[self.checkpoint_rank],
            )
            return
        self._write_test_outputs(stage_loss)

    def checkpoint_rank(self, checkpoint):
        """Ranks checkpoints: best dev ``selection_metric``, ties broken by
        the other of dev EER and dev loss (small dev sets tie on EER)."""
        primary = self.hparams.selection_metric
        if primary not in ("EER", "loss"):
            raise ValueError(f"selection_metric must be 'EER' or 'loss', got {primary!r}")
        secondary = "loss" if primary == "EER" else "EER"
        meta = checkpoint.meta
        return (-meta.get(primary, float("inf")), -meta.get(secondary, float("inf")))

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Loads the best checkpoint by ``checkpoint_rank``; never scores an
        untrained model."""
        if self.checkpointer.find_checkpoint(importance_key=self.checkpoint_rank) is None:
            raise FileNotFoundError(
                f"no checkpoint in {self.checkpointer.checkpoints_dir}: train the model first"
            )
        self.checkpointer.recover_if_possible(importance_key=self.checkpoint_rank)

    @staticmethod
    def _records_eer(records):
        scores = np.array([r.score for r in records])
        keys = np.array([r.key for r in records])
        return compute_eer(scores[keys == "bonafide"], scores[keys == "spoof"])[0]

    def test_metrics(self, records):
        """Metrics of one test set; recipes extend this.

        Returns a dict with ``eer`` (%), trial counts and ``eer_by_attack`` (%).
        """
        return {
            "eer": 100 * self._records_eer(records),
            "n_trials": len(records),
            "n_bonafide": sum(r.key == "bonafide" for r in records),
            "n_spoof": sum(r.key != "bonafide" for r in records),
            "eer_by_attack": {
                attack: 100 * eer
                for attack, eer in eer_by_group(
                    [r.score for r in records],
                    [r.key for r in records],
                    [r.attack for r in records],
                ).items()
            },
        }

    def evaluate_set(self, dataset, name, loader_kwargs=None):
        """Scores ``dataset`` with the selected checkpoint as test set ``name``.

        Writes ``<output_folder>/scores/<name>.txt`` and adds the metrics to
        ``<output_folder>/results.json``.
        """
        self.test_name = name
        return self.evaluate(dataset, test_loader_kwargs=loader_kwargs or {})

    def _write_test_outputs(self, stage_loss):
        name = getattr(self, "test_name", "test")
        records = self.score_records
        folder = self.hparams.output_folder
        score_path = os.path.join(folder, "scores", f"{name}.txt")
        write_scores(score_path, records)
        metrics = {"loss": stage_loss, **self.test_metrics(records), "score_file": score_path}

        results_path = os.path.join(folder, "results.json")
        results = {}
        if os.path.isfile(results_path):
            with open(results_path, encoding="utf-8") as fin:
                results = json.load(fin)
        results["config"] = {
            key: getattr(self.hparams, key)
            for key in RUN_CONFIG_KEYS
            if hasattr(self.hparams, key)
        }
        results["layer_weights"] = self.modules.ssl.layer_weights().tolist()
        selected = self.checkpointer.find_checkpoint(importance_key=self.checkpoint_rank)
        if selected is not None:
            results["selected_checkpoint"] = {
                k: v for k, v in selected.meta.items() if k != "unixtime"
            }
        results.setdefault("test_sets", {})[name] = metrics
        atomic_write_text(results_path, json.dumps(results, indent=2, default=float) + "\n")
        print_summary(name, metrics, results["layer_weights"])


def print_summary(name, metrics, layer_weights):
    """Prints a compact table of one test set's metrics."""
    lines = [f"== {name}: {metrics['n_trials']} trials "
             f"({metrics['n_bonafide']} bona fide, {metrics['n_spoof']} spoof) =="]
    for key, value in metrics.items():
        if isinstance(value, float) and key != "loss":
            lines.append(f"  {key:<24} {value:8.3f}")
    for group_key in (k for k, v in metrics.items() if isinstance(v, dict)):
        cells = "  ".join(f"{g}:{v:.2f}" for g, v in metrics[group_key].items())
        lines.append(f"  {group_key:<24} {cells}")
    lines.append("  layer weights            " + " ".join(f"{w:.3f}" for w in layer_weights))
    print("\n".join(lines), flush=True)
