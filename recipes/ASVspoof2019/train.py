#!/usr/bin/env python3
"""Layer-wise SSL countermeasure on ASVspoof 2019 LA.

Trains on train, selects the checkpoint on dev, scores eval:

    python recipes/ASVspoof2019/train.py recipes/ASVspoof2019/hparams/ffn.yaml \
        --data_folder=/path/to/ASVspoof2019 --n_layers=6

Writes ``<output_folder>/scores/eval.txt`` and ``<output_folder>/results.json``
(EER, min t-DCF when the organisers' ASV scores are present, EER per attack,
layer weights). ``evaluate.py`` scores the trained model on other datasets.
"""

import os
import sys

from speechbrain.utils.distributed import run_on_main

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asvspoof2019_prepare import asv_score_path, prepare_asvspoof2019  # noqa: E402
from crossdataset_prepare import read_asv21_scores  # noqa: E402

from lobes.dataio.dataset import make_datasets  # noqa: E402
from lobes.evaluation.bootstrap import tdcf_interval  # noqa: E402
from lobes.evaluation.metrics import min_tdcf_2019, min_tdcf_2021, read_asv_scores  # noqa: E402
from lobes.training.brain import SpoofBrain  # noqa: E402
from lobes.training.recipe import load_recipe, train_and_test  # noqa: E402


class ASVspoof2019Brain(SpoofBrain):
    """Adds min t-DCF where the organisers' ASV scores exist: the 2019
    formulation on LA19 eval, the 2021 one on ASVspoof 2021 LA."""

    def asv_scores(self):
        """ASV scores and t-DCF function for the current test set, or None."""
        if self.test_name == "eval":
            path = asv_score_path(self.hparams.data_folder, "eval")
            return (read_asv_scores(path), min_tdcf_2019) if os.path.isfile(path) else None
        if self.test_name == "asv21_la":
            asv = read_asv21_scores(self.hparams.asv21_la_folder)
            return (asv, min_tdcf_2021) if asv is not None else None
        return None

    def test_metrics(self, records):
        """The shared metrics plus min t-DCF where the ASV scores exist."""
        metrics = super().test_metrics(records)
        found = self.asv_scores()
        if found is not None:
            asv, min_tdcf = found
            bonafide = [r.score for r in records if r.key == "bonafide"]
            spoof = [r.score for r in records if r.key == "spoof"]
            metrics["min_tdcf"] = min_tdcf(bonafide, spoof, asv)
            metrics["min_tdcf_interval"] = tdcf_interval(
                records, asv, 2019 if min_tdcf is min_tdcf_2019 else 2021, getattr(self, "test_speakers", None)
            )
        return metrics


def dataio_prep(hparams):
    """Train, dev and eval datasets from the prepared manifests."""
    return make_datasets(hparams, ("train", "dev", "eval"))


if __name__ == "__main__":
    hparams, run_opts = load_recipe()
    run_on_main(
        prepare_asvspoof2019,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["manifest_folder"],
            "skip_missing": hparams["skip_missing_audio"],
        },
    )
    datasets = dataio_prep(hparams)
    train_and_test(ASVspoof2019Brain, hparams, run_opts, datasets, test_sets=["eval"])
