#!/usr/bin/env python3
"""Layer-wise SSL countermeasure on HABLA (Latin-American Spanish).

Prepares a speaker-disjoint train/dev/test split (or the published lists),
trains on train, selects the checkpoint on dev and scores test:

    python recipes/HABLA/train.py recipes/HABLA/hparams/ffn.yaml \
        --data_folder=/path/to/HABLA --n_layers=6

Writes ``<output_folder>/scores/test.txt`` (one line per test trial) and
``<output_folder>/results.json`` (EER overall, per spoofing method as named in
the data, per method family, and the layer weights).
"""

import os
import sys

from speechbrain.utils.distributed import run_on_main

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from habla_prepare import SPLITS, method_family, prepare_habla  # noqa: E402

from lobes.dataio.dataset import make_datasets  # noqa: E402
from lobes.dataio.prepare import read_manifest  # noqa: E402
from lobes.evaluation.metrics import eer_by_group  # noqa: E402
from lobes.training.brain import SpoofBrain  # noqa: E402
from lobes.training.recipe import load_recipe, train_and_test  # noqa: E402


class HABLABrain(SpoofBrain):
    """Adds the EER per method family (CycleGAN, StarGAN, Diff, TTS, TTS-VC).

    ``eer_by_attack`` keeps the methods as the data names them, so TTS-VC
    variants are also reported one by one. The family is the manifest's
    ``family`` column: in the full release the folder decides it
    (``TTS-VC/TTS-StarGAN/...`` is TTS-VC), which the method name alone
    cannot always tell.
    """

    def families(self):
        """Utterance id -> family, from the manifest of the set being scored."""
        path = os.path.join(self.hparams.manifest_folder, f"{self.test_name}.csv")
        return {
            row["ID"]: row.get("family") or method_family(row["attack"]) for row in read_manifest(path)
        }

    def test_metrics(self, records):
        """The shared metrics plus the EER per spoofing method family."""
        metrics = super().test_metrics(records)
        family = self.families()
        by_family = eer_by_group(
            [r.score for r in records],
            [r.key for r in records],
            [family[r.utt_id] for r in records],
        )
        metrics["eer_by_method"] = {family: 100 * eer for family, eer in by_family.items()}
        return metrics


def dataio_prep(hparams):
    """Train, dev and test datasets from the prepared manifests."""
    return make_datasets(hparams, SPLITS)


if __name__ == "__main__":
    hparams, run_opts = load_recipe()
    run_on_main(
        prepare_habla,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["manifest_folder"],
            "split_mode": hparams["split_mode"],
            "split_ratios": hparams["split_ratios"],
            "split_seed": hparams["split_seed"],
            "cross_split_spoofs": hparams["cross_split_spoofs"],
            "skip_missing": hparams["skip_missing_audio"],
        },
    )
    datasets = dataio_prep(hparams)
    train_and_test(HABLABrain, hparams, run_opts, datasets, test_sets=["test"])
