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
from asvspoof5_prepare import prepare_asvspoof5, prepared_splits  # noqa: E402

from lobes.brain import SpoofBrain  # noqa: E402
from lobes.calibration import dev_calibration  # noqa: E402
from lobes.data import make_datasets  # noqa: E402
from lobes.metrics import metrics_by_group  # noqa: E402
from lobes.prepare import read_manifest  # noqa: E402
from lobes.recipe import load_recipe, train_and_test  # noqa: E402
from lobes.scores import atomic_write_text  # noqa: E402

CHALLENGE_HEADER = "filename\tcm-score\n"


def write_challenge_scores(path, records):
    """Writes the challenge's score file: header ``filename<TAB>cm-score``,
    then one ``FILE<TAB>SCORE`` line a trial.

    Example
    -------
    >>> import tempfile
    >>> from lobes.scores import ScoreRecord as R
    >>> path = os.path.join(tempfile.mkdtemp(), "eval_challenge.tsv")
    >>> write_challenge_scores(path, [R("E_0000000001", "A17", "spoof", -1.25)])
    >>> open(path).read()
    'filename\\tcm-score\\nE_0000000001\\t-1.250000\\n'
    >>> import shutil; shutil.rmtree(os.path.dirname(path))
    """
    ids = [r.utt_id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a trial is scored twice while writing {path}")
    lines = "".join(f"{r.utt_id}\t{r.score:.6f}\n" for r in records)
    atomic_write_text(path, CHALLENGE_HEADER + lines)


def breakdowns(records, codecs):
    """Metrics by attack and, when any trial is coded, by codec (each with
    ``pooled``). ``codecs``: utterance id -> codec (``-`` when uncoded)."""
    scores = np.array([r.score for r in records], dtype=np.float64)
    is_bonafide = np.array([r.key == "bonafide" for r in records])
    result = {"by_attack": metrics_by_group(scores, is_bonafide, [r.attack for r in records])}
    trial_codecs = [codecs[r.utt_id] for r in records]
    if any(codec != "-" for codec in trial_codecs):
        result["by_codec"] = metrics_by_group(scores, is_bonafide, trial_codecs, shared_bonafide=False)
    return result


class ASVspoof5Brain(SpoofBrain):
    """Adds the breakdowns by attack and codec and the challenge score files."""

    def set_codecs(self):
        """Utterance id -> codec of the current set, from its manifest."""
        manifest = os.path.join(self.hparams.manifest_folder, f"{self.test_name}.csv")
        return {row["ID"]: row["codec"] for row in read_manifest(manifest)}

    def test_metrics(self, records):
        metrics = super().test_metrics(records)
        metrics.update(breakdowns(records, self.set_codecs()))
        return metrics

    def extra_test_outputs(self, records, folder):
        scores = os.path.join(folder, "scores")
        outputs = {"challenge_score_file": os.path.join(scores, f"{self.test_name}_challenge.tsv")}
        write_challenge_scores(outputs["challenge_score_file"], records)
        # Calibrated with the map fitted on this folder's dev scores (the
        # same one lobes.calibration applies to scores/<set>.calibrated.txt).
        calibration = dev_calibration(folder, getattr(self.hparams, "calibration_prior", None))
        if calibration is not None:
            calibrated = calibration.apply_records(records)
            path = os.path.join(scores, f"{self.test_name}_challenge.calibrated.tsv")
            write_challenge_scores(path, calibrated)
            outputs["challenge_calibrated_score_file"] = path
            outputs["calibrated_breakdowns"] = breakdowns(calibrated, self.set_codecs())
        return outputs


def dataio_prep(hparams, splits):
    """Datasets of the prepared splits."""
    return make_datasets(hparams, splits)


if __name__ == "__main__":
    hparams, run_opts = load_recipe()
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
