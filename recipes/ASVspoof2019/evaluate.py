#!/usr/bin/env python3
"""Cross-dataset evaluation of a model trained by ``train.py``.

Scores the selected checkpoint on ASVspoof 2021 LA (EER, plus the 2021 min
t-DCF when the keys archive has the ASV scores), ASVspoof 2021 DF (EER on the
``eval`` subset) and In-the-Wild (EER); each set whose folder is given.
Pass the ``hyperparams.yaml`` that training saved in its output folder, so
the model is rebuilt exactly as trained:

    python recipes/ASVspoof2019/evaluate.py results/.../hyperparams.yaml \
        --asv21_la_folder=/data/ASVspoof2021_LA --asv21_df_folder=/data/ASVspoof2021_DF \
        --itw_folder=/data/release_in_the_wild

Writes ``scores/<set>.txt`` and adds each set to ``results.json``.
"""

import os
import sys

from speechbrain.utils.distributed import run_on_main

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crossdataset_prepare import prepare_asvspoof2021, prepare_in_the_wild  # noqa: E402
from train import ASVspoof2019Brain  # noqa: E402

from lobes.dataio.dataset import make_dataset  # noqa: E402
from lobes.training.branched import brain_class_for  # noqa: E402
from lobes.training.recipe import load_recipe  # noqa: E402

EVAL_SETS = {
    "asv21_la": ("asv21_la_folder", lambda folder, save: prepare_asvspoof2021(folder, save, "LA")),
    "asv21_df": ("asv21_df_folder", lambda folder, save: prepare_asvspoof2021(folder, save, "DF")),
    "itw": ("itw_folder", prepare_in_the_wild),
}


def main():
    """Scores a trained run on each cross-dataset set the YAML names."""
    hparams, run_opts = load_recipe()
    chosen = {name: hparams[key] for name, (key, _) in EVAL_SETS.items() if hparams.get(key)}
    if not chosen:
        sys.exit("give at least one of --asv21_la_folder, --asv21_df_folder, --itw_folder")
    brain = brain_class_for(ASVspoof2019Brain, hparams)(
        modules=hparams["modules"], hparams=hparams, run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    for name, folder in chosen.items():
        prepare = EVAL_SETS[name][1]
        run_on_main(prepare, args=[folder, hparams["manifest_folder"]])
        manifest = os.path.join(hparams["manifest_folder"], f"{name}.csv")
        dataset = make_dataset(manifest, hparams["eval_crop"], hparams["max_samples"])
        brain.evaluate_set(dataset, name, hparams["test_dataloader_opts"])
    brain.leave_distributed()


if __name__ == "__main__":
    main()
