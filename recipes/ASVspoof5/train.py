#!/usr/bin/env python3
"""Layer-wise SSL countermeasure on ASVspoof 5, Track 1.

Trains on train, selects the checkpoint on dev (track 1), scores dev (which
fits the score calibration) and eval (track 1) when its protocol is present:

    python recipes/ASVspoof5/train.py recipes/ASVspoof5/hparams/aasist.yaml \
        --data_folder=/path/to/ASVspoof5 --n_layers=6

Writes, for each scored set, ``scores/<set>.txt`` (the project's format),
``scores/<set>.calibrated.txt``, the challenge's score files
``scores/<set>_challenge.tsv`` (raw) and ``scores/<set>_challenge.calibrated.tsv``
(tab separated, header ``filename<TAB>cm-score``), and ``results.json``:
EER, minDCF, actDCF and Cllr of raw and calibrated scores, each broken down
by attack and (where codecs are present, i.e. on eval) by codec, both with a
``pooled`` entry.
"""

import os
import sys

import numpy as np
from speechbrain.utils.distributed import run_on_main

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asvspoof5_prepare import prepare_asvspoof5  # noqa: E402

from lobes.dataio.dataset import make_datasets  # noqa: E402
from lobes.dataio.prepare import prepared_splits, read_manifest  # noqa: E402
from lobes.evaluation.calibration import check_prior, dev_calibration  # noqa: E402
from lobes.evaluation.metrics import metrics_by_groups, record_metrics  # noqa: E402
from lobes.training.brain import SpoofBrain  # noqa: E402
from lobes.training.recipe import load_recipe, train_and_test  # noqa: E402
from lobes.utils.files import atomic_write_text  # noqa: E402

CHALLENGE_HEADER = "filename\tcm-score\n"


def write_challenge_scores(path, records, scores=None):
    """Writes the challenge's score file: header ``filename<TAB>cm-score``,
    then one ``FILE<TAB>SCORE`` line a trial; ``scores`` (same order)
    replaces the records' own (e.g. calibrated ones).

    Example
    -------
    >>> import tempfile
    >>> from lobes.evaluation.scores import ScoreRecord as R
    >>> path = os.path.join(tempfile.mkdtemp(), "eval_challenge.tsv")
    >>> write_challenge_scores(path, [R("E_0000000001", "A17", "spoof", -1.25)])
    >>> open(path).read()
    'filename\\tcm-score\\nE_0000000001\\t-1.250000\\n'
    >>> import shutil; shutil.rmtree(os.path.dirname(path))
    """
    ids = [r.utt_id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a trial is scored twice while writing {path}")
    scores = [r.score for r in records] if scores is None else scores
    lines = "".join(f"{utt_id}\t{score:.6f}\n" for utt_id, score in zip(ids, scores))
    atomic_write_text(path, CHALLENGE_HEADER + lines)


def codec_grouping(codecs):
    """``{"by_codec": (codecs, False)}`` when any trial is coded, else ``{}``
    (see ``lobes.evaluation.metrics.metrics_by_groups``; codecs hold bona fide trials too)."""
    return {"by_codec": (codecs, False)} if any(codec != "-" for codec in codecs) else {}


class ASVspoof5Brain(SpoofBrain):
    """Adds the breakdown by codec (``by_attack`` is every recipe's) and the
    challenge score files, raw and calibrated."""

    def record_codecs(self, records):
        """The codec of each record, from the current set's manifest."""
        manifest = os.path.join(self.hparams.manifest_folder, f"{self.test_name}.csv")
        codec_of = {row["ID"]: row["codec"] for row in read_manifest(manifest)}
        return [codec_of[r.utt_id] for r in records]

    def test_metrics(self, records):
        """The shared metrics, also broken down by codec."""
        # One sort for the pooled metrics and both breakdowns; kept for
        # extra_test_outputs, which gets the same records next.
        self.codecs = self.record_codecs(records)
        return record_metrics(records, groupings=codec_grouping(self.codecs))

    def extra_test_outputs(self, records, folder):
        """The challenge's score files of the set."""
        scores = os.path.join(folder, "scores")
        outputs = {"challenge_score_file": os.path.join(scores, f"{self.test_name}_challenge.tsv")}
        write_challenge_scores(outputs["challenge_score_file"], records)
        # Calibrated with the map fitted on this folder's dev scores (the
        # same one lobes.evaluation.calibration applies to scores/<set>.calibrated.txt).
        calibration = dev_calibration(folder, getattr(self.hparams, "calibration_prior", None))
        if calibration is not None:
            raw = np.fromiter((r.score for r in records), dtype=np.float64, count=len(records))
            calibrated = calibration.apply(raw)
            path = os.path.join(scores, f"{self.test_name}_challenge.calibrated.tsv")
            write_challenge_scores(path, records, calibrated.tolist())
            outputs["challenge_calibrated_score_file"] = path
            is_bonafide = np.array([r.key == "bonafide" for r in records], dtype=bool)
            groupings = {"by_attack": ([r.attack for r in records], True), **codec_grouping(self.codecs)}
            outputs["calibrated_breakdowns"] = metrics_by_groups(calibrated, is_bonafide, groupings)
        return outputs


def dataio_prep(hparams, splits):
    """Datasets of the prepared splits."""
    return make_datasets(hparams, splits)


if __name__ == "__main__":
    hparams, run_opts = load_recipe()
    check_prior(hparams["calibration_prior"])
    run_on_main(
        prepare_asvspoof5,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["manifest_folder"],
            "skip_missing": hparams["skip_missing_audio"],
        },
    )
    splits = prepared_splits(hparams["manifest_folder"])
    datasets = dataio_prep(hparams, splits)
    test_sets = [split for split in splits if split == "eval"]
    train_and_test(ASVspoof5Brain, hparams, run_opts, datasets, test_sets=test_sets)
