#!/usr/bin/env python3
"""Layer-wise SSL countermeasure on PartialSpoof: detection and localisation.

Utterance-level detection on whole utterances (FFN or AASIST head)::

    python recipes/PartialSpoof/train.py recipes/PartialSpoof/hparams/aasist.yaml \
        --data_folder=/path/to/PartialSpoof --n_layers=4

Segment-level localisation (a frame-level head scoring every 20 ms frame)::

    python recipes/PartialSpoof/train.py recipes/PartialSpoof/hparams/segment.yaml \
        --data_folder=/path/to/PartialSpoof

Both select on dev and score dev and eval: ``<output_folder>/scores/{dev,eval}.txt``
(utterance scores) and ``results.json``; the segment task also writes
``scores/<set>_segments_<ms>ms.txt`` (``UTT_ID SEGMENT_INDEX SCORE``) and
the segment EER per resolution.
"""

import logging
import os
import sys

import numpy as np
import speechbrain as sb
import torch
from speechbrain.utils.distributed import run_on_main

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from partialspoof_prepare import prepare_partialspoof  # noqa: E402

from lobes.dataio.batching import SortedBatchSampler, padding_ratio, random_batches  # noqa: E402
from lobes.dataio.dataset import SAMPLE_RATE, make_datasets, manifest_paths  # noqa: E402
from lobes.dataio.prepare import read_manifest  # noqa: E402
from lobes.evaluation.metrics import compute_eer  # noqa: E402
from lobes.evaluation.segments import (  # noqa: E402
    frames_per_segment,
    label_column,
    labels_from_string,
    pool_to_segments,
    segment_eer,
    write_segment_scores,
)
from lobes.models.heads.frame import frame_scores, utterance_logits  # noqa: E402
from lobes.training.brain import SpoofBrain  # noqa: E402
from lobes.training.distributed import gather_unique  # noqa: E402
from lobes.training.recipe import load_recipe, train_and_test  # noqa: E402
from lobes.utils.run_folder import SINGLE_RUN  # noqa: E402

logger = logging.getLogger(__name__)
SPLITS = ("train", "dev", "eval")


class PartialSpoofBrain(SpoofBrain):
    """Utterance-level detection with length-sorted training batches.

    A ``SortedBatchSampler`` given in the train loader options is registered
    as the train sampler, so that ``Brain.fit`` reshuffles its batch order
    every epoch (``set_epoch``) reproducibly, also after resuming. Under
    torchrun it is sharded by rank itself (``SortedBatchSampler.shard``)
    rather than by SpeechBrain's ``DistributedSamplerWrapper``, which breaks
    when a rank gets a single batch.
    """

    def _train_loader_specifics(self, dataset, loader_kwargs):
        sampler = loader_kwargs.get("batch_sampler")
        if not isinstance(sampler, SortedBatchSampler):
            return super()._train_loader_specifics(dataset, loader_kwargs)
        if self.distributed_launch:
            sampler.shard(int(os.environ["RANK"]), self.world_size)
        self.train_sampler = sampler
        return loader_kwargs


class SegmentBrain(PartialSpoofBrain):
    """Localisation: a frame-level head trained on the 20 ms segment labels.

    Loss = the YAML's ``frame_cost`` over the frames (weighted cross-entropy,
    ``segment_class_weights``) plus ``utterance_loss_weight`` times its
    ``compute_cost`` on the frame scores pooled over the utterance
    (``utterance_pooling``). The
    utterance score (score files, utterance EER, checkpoint selection) is that
    pooled frame score. At test time frame scores are pooled to every label
    resolution for the segment EERs and segment score files.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # segment.yaml builds one encoder and one frame head, whatever these say.
        branching = [o for o in ("heads", "init_seeds") if getattr(self.hparams, o, None) is not None]
        if branching or len(self.states) != 1:
            raise ValueError(
                "the segment task trains one model per run: give n_layers a single value "
                f"and leave heads and init_seeds null (given: {branching or 'n_layers list'})"
            )

    def compute_forward(self, batch, stage):
        """Waveforms -> encoder -> fusion -> frame head: frame logits (B, T, 2)
        and relative frame lengths."""
        layers, frame_lens, mask = self.encoder_pass(batch, stage)
        return self.model(stage)(layers, mask, frame_lens), frame_lens

    def compute_objectives(self, predictions, batch, stage):
        """Frame plus utterance loss; collects frame and utterance scores."""
        frame_logits, feat_lens = predictions
        n_frames = frame_logits.shape[1]
        real_frames = torch.round(feat_lens * n_frames).long().clamp(1, n_frames)
        utt_logits = utterance_logits(frame_logits, feat_lens, self.hparams.utterance_pooling)
        utt_loss = self.hparams.compute_cost(utt_logits, batch.label_index.to(self.device))
        loss = self._frame_loss(frame_logits, real_frames, batch)
        loss = loss + self.hparams.utterance_loss_weight * utt_loss
        if stage != sb.Stage.TRAIN:
            self._collect(batch, utt_logits[:, 1], frame_scores(frame_logits), real_frames, loss)
        return loss

    def _frame_loss(self, frame_logits, real_frames, batch):
        """Weighted cross-entropy over the frames both the SSL and the 20 ms
        labels cover (they may differ by a frame at the end)."""
        labels, label_lens = batch.frame_labels
        labels = labels.to(self.device).long()
        n_labels = torch.round(label_lens.to(self.device) * labels.shape[1]).long()
        width = min(frame_logits.shape[1], labels.shape[1])
        usable = torch.minimum(real_frames, n_labels)
        valid = torch.arange(width, device=self.device)[None, :] < usable[:, None]
        return self.hparams.frame_cost(frame_logits[:, :width][valid], labels[:, :width][valid])

    def _collect(self, batch, utt_scores, scores, real_frames, loss):
        # SpoofBrain's collection (the run's one branch) feeds its dev
        # selection, early stopping and score files.
        self.states[SINGLE_RUN].record(batch, utt_scores, loss)
        self.n_scored_batches += 1
        scores = scores.detach().float().cpu().numpy()
        for i, utt_id in enumerate(batch.id):
            self.frame_outputs[utt_id] = (scores[i, : int(real_frames[i])], batch.segment_labels[i])

    def on_stage_start(self, stage, epoch=None):
        """Also starts an empty collection of frame scores."""
        super().on_stage_start(stage, epoch)
        self.frame_outputs = {}

    def gather_stage_outputs(self):
        """Also gathers every rank's frame scores (a no-op in one process)."""
        super().gather_stage_outputs()
        self.frame_outputs = dict(gather_unique(list(self.frame_outputs.items()), key=lambda item: item[0]))

    def test_metrics(self, records):
        """Adds segment EERs per resolution and writes segment score files."""
        metrics = super().test_metrics(records)
        name = getattr(self, "test_name", "test")
        folder = os.path.join(self.hparams.output_folder, "scores")
        keys = np.array([r.key for r in records])
        mean_scores = np.array([self.frame_outputs[r.utt_id][0].mean() for r in records])
        # The alternative utterance pooling, for comparison with the trained one.
        metrics["eer_mean_of_frames"] = 100 * compute_eer(
            mean_scores[keys == "bonafide"], mean_scores[keys == "spoof"]
        )[0]
        metrics["segment_eer"] = {}
        for resolution in self.hparams.segment_resolutions:
            ms = int(round(resolution * 1000))
            k = frames_per_segment(resolution)
            pooled, labels = [], []
            for record in records:
                scores, label_strings = self.frame_outputs[record.utt_id]
                segment_labels = labels_from_string(label_strings[resolution])
                pooled.append(
                    pool_to_segments(scores, k, segment_labels.size, self.hparams.segment_pooling)
                )
                labels.append(segment_labels)
            write_segment_scores(
                os.path.join(folder, f"{name}_segments_{ms}ms.txt"),
                zip((r.utt_id for r in records), pooled),
            )
            metrics["segment_eer"][f"{ms}ms"] = 100 * segment_eer(pooled, labels)
        metrics["segment_score_files"] = os.path.join(folder, f"{name}_segments_<ms>ms.txt")
        return metrics


def ssl_frames(duration):
    """SSL frames (20 ms hop, 25 ms receptive field) of ``duration`` seconds.

    Example
    -------
    >>> ssl_frames(1.0)
    49
    """
    return max(1, (int(round(duration * SAMPLE_RATE)) - 400) // 320 + 1)


def add_segment_labels(dataset, resolutions, manifest):
    """Adds ``frame_labels`` (20 ms, 1 = bona fide) and ``segment_labels``
    (resolution -> label string) to a dataset's outputs."""
    columns = {resolution: label_column(str(resolution)) for resolution in resolutions}
    first_row = read_manifest(manifest)[0]
    absent = [c for c in [label_column("0.02"), *columns.values()] if c not in first_row]
    if absent:
        raise ValueError(
            f"{manifest}: the segment task needs segment label columns {absent}; "
            f"the prepare step found no label file for them (database/segment_labels)"
        )

    @sb.utils.data_pipeline.takes(label_column("0.02"))
    @sb.utils.data_pipeline.provides("frame_labels")
    def frame_pipeline(labels):
        return torch.from_numpy(labels_from_string(labels))

    @sb.utils.data_pipeline.takes(*columns.values())
    @sb.utils.data_pipeline.provides("segment_labels")
    def segment_pipeline(*labels):
        return dict(zip(columns, labels))

    sb.dataio.dataset.add_dynamic_item([dataset], frame_pipeline)
    sb.dataio.dataset.add_dynamic_item([dataset], segment_pipeline)
    sb.dataio.dataset.set_output_keys(
        [dataset],
        ["id", "sig", "label_index", "key", "attack", "frame_labels", "segment_labels"],
    )


def dataio_prep(hparams):
    """Datasets of whole utterances; dev and eval sorted by duration.

    Sorting the scoring sets keeps their batches short of padding; the
    training set is batched by a ``SortedBatchSampler`` in ``train.py``.
    """
    manifests = manifest_paths(hparams, SPLITS)
    datasets = make_datasets(hparams, SPLITS)
    for split in SPLITS:
        if hparams["task"] == "segment":
            add_segment_labels(datasets[split], hparams["segment_resolutions"], manifests[split])
        if split != "train" and hparams["batching"] == "sorted":
            datasets[split] = datasets[split].filtered_sorted(sort_key="duration")
    return datasets


def train_loader_options(hparams, train_set):
    """Train loader options: length-sorted batches in shuffled order, or a
    plain shuffle (``batching: random``); logs the padding of both."""
    durations = [float(train_set.data[i]["duration"]) for i in train_set.data_ids]
    frames = [ssl_frames(d) for d in durations]
    sampler = SortedBatchSampler(frames, hparams["batch_size"], shuffle=True, seed=hparams["seed"])
    sorted_ratio = padding_ratio(frames, sampler.batches)
    random_ratio = padding_ratio(frames, random_batches(len(frames), hparams["batch_size"], hparams["seed"]))
    message = (
        f"train batches of {hparams['batch_size']}: {100 * sorted_ratio:.1f}% padded frames "
        f"sorted, {100 * random_ratio:.1f}% shuffled (batching: {hparams['batching']})"
    )
    logger.info(message)
    options = {"num_workers": hparams["num_workers"]}
    if hparams["batching"] == "sorted":
        options["batch_sampler"] = sampler
    elif hparams["batching"] == "random":
        options.update(batch_size=hparams["batch_size"], shuffle=True)
    else:
        raise ValueError(f"batching must be 'sorted' or 'random', got {hparams['batching']!r}")
    return options


def brain_class(task):
    """The Brain of ``task``: ``utterance`` or ``segment``."""
    classes = {"utterance": PartialSpoofBrain, "segment": SegmentBrain}
    if task not in classes:
        raise ValueError(f"task must be one of {sorted(classes)}, got {task!r}")
    return classes[task]


if __name__ == "__main__":
    hparams, run_opts = load_recipe()
    run_on_main(
        prepare_partialspoof,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["manifest_folder"],
            "bonafide_symbol": str(hparams["bonafide_symbol"]),
            "skip_missing": hparams["skip_missing_audio"],
        },
    )
    datasets = dataio_prep(hparams)
    hparams["train_dataloader_opts"] = train_loader_options(hparams, datasets["train"])
    train_and_test(brain_class(hparams["task"]), hparams, run_opts, datasets, test_sets=["dev", "eval"])
