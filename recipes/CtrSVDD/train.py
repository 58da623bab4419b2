#!/usr/bin/env python3
"""Layer-wise SSL countermeasure on CtrSVDD (singing voice deepfakes).

Trains on train, selects the checkpoint on dev, scores eval:

    python recipes/CtrSVDD/train.py recipes/CtrSVDD/hparams/aasist.yaml \
        --data_folder=/path/to/CtrSVDD --n_layers=6 --train_crop=random

Writes ``<output_folder>/scores/eval.txt`` (the project's format),
``<output_folder>/scores/eval_challenge.txt`` (the challenge's ``UTT_ID
SCORE`` format) and ``<output_folder>/results.json``: ``eer_challenge``, the
headline pooled EER without attack A14 and source ``acesinger``; ``eer``
over every trial; EER per attack and per source corpus; layer weights.
"""

import os
import sys

import numpy as np
from speechbrain.utils.distributed import run_on_main

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ctrsvdd_prepare import prepare_ctrsvdd  # noqa: E402

from lobes.dataio.dataset import make_datasets  # noqa: E402
from lobes.dataio.prepare import read_manifest  # noqa: E402
from lobes.evaluation.metrics import compute_eer, eer_by_group  # noqa: E402
from lobes.training.brain import SpoofBrain  # noqa: E402
from lobes.training.recipe import load_recipe, train_and_test  # noqa: E402
from lobes.utils.files import atomic_write_text  # noqa: E402

# The challenge leaves these out of its headline EER.
EXCLUDED_ATTACKS = frozenset({"A14"})
EXCLUDED_SOURCES = frozenset({"acesinger"})


def challenge_eer(records, sources):
    """Pooled EER (a fraction) without attack A14 and source ``acesinger``.

    Arguments
    ---------
    records : list of ScoreRecord
    sources : dict
        Utterance id -> source corpus.

    Returns
    -------
    eer : float
    n_trials : int
        Trials kept.

    Example
    -------
    >>> from lobes.evaluation.scores import ScoreRecord as R
    >>> records = [R("a", "-", "bonafide", 0.9), R("b", "A09", "spoof", 0.1),
    ...            R("c", "A14", "spoof", 0.95), R("d", "-", "bonafide", 0.0)]
    >>> challenge_eer(records, {"a": "m4singer", "b": "kising", "c": "kising", "d": "acesinger"})
    (0.0, 2)
    """
    kept = [
        r for r in records
        if r.attack not in EXCLUDED_ATTACKS and sources[r.utt_id] not in EXCLUDED_SOURCES
    ]
    scores = np.array([r.score for r in kept])
    bonafide = np.array([r.key == "bonafide" for r in kept], dtype=bool)
    return compute_eer(scores[bonafide], scores[~bonafide])[0], len(kept)


def eer_by_source(records, sources):
    """EER (%) of each source corpus's spoofs against all bona fide trials."""
    return {
        source: 100 * eer
        for source, eer in eer_by_group(
            [r.score for r in records],
            [r.key for r in records],
            [sources[r.utt_id] for r in records],
        ).items()
    }


def write_challenge_scores(path, records):
    """Writes ``UTT_ID SCORE`` lines (the challenge's submission format).

    Example
    -------
    >>> import tempfile
    >>> from lobes.evaluation.scores import ScoreRecord as R
    >>> path = os.path.join(tempfile.mkdtemp(), "eval_challenge.txt")
    >>> write_challenge_scores(path, [R("CtrSVDD_0001_E_0000001", "A09", "spoof", -1.25)])
    >>> open(path).read()
    'CtrSVDD_0001_E_0000001 -1.250000\\n'
    >>> import shutil; shutil.rmtree(os.path.dirname(path))
    """
    ids = [r.utt_id for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a trial is scored twice while writing {path}")
    atomic_write_text(path, "".join(f"{r.utt_id} {r.score:.6f}\n" for r in records))


def manifest_sources(path):
    """Utterance id -> source corpus, from a prepared manifest."""
    return {row["ID"]: row["source"] for row in read_manifest(path)}


class CtrSVDDBrain(SpoofBrain):
    """Adds the challenge's headline EER, EER per source and its score file."""

    def test_metrics(self, records):
        """The shared metrics plus the challenge's headline EER and the EER per source."""
        metrics = super().test_metrics(records)
        # Score records carry no source corpus: look it up in the manifest.
        name = self.test_name
        sources = manifest_sources(os.path.join(self.hparams.manifest_folder, f"{name}.csv"))
        eer, n_kept = challenge_eer(records, sources)
        metrics["eer_challenge"] = 100 * eer
        metrics["n_trials_challenge"] = n_kept
        metrics["eer_by_source"] = eer_by_source(records, sources)
        return metrics

    def extra_test_outputs(self, records, folder):
        """The challenge's score file of the set."""
        challenge_file = os.path.join(folder, "scores", f"{self.test_name}_challenge.txt")
        write_challenge_scores(challenge_file, records)
        return {"challenge_score_file": challenge_file}


def dataio_prep(hparams):
    """Train, dev and eval datasets from the prepared manifests."""
    return make_datasets(hparams, ("train", "dev", "eval"))


if __name__ == "__main__":
    hparams, run_opts = load_recipe()
    run_on_main(
        prepare_ctrsvdd,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["manifest_folder"],
            "eval_key": hparams["eval_key"],
            "skip_missing": hparams["skip_missing_audio"],
        },
    )
    datasets = dataio_prep(hparams)
    train_and_test(CtrSVDDBrain, hparams, run_opts, datasets, test_sets=["eval"])
