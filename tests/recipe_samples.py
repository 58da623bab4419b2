#!/usr/bin/env python3
"""Sample data trees for the recipe-test rows in ``tests/recipes/*.csv``.

Each row's ``test_debug_flags`` point at ``tests/samples/<Dataset>`` and at a
tiny local SSL model, ``tests/samples/ssl/<TINY_SSL_NAME>``. No audio is
committed: the trees are written from the fixture builders the tests
already have, by ``tests/recipes/test_recipe_rows.py`` at test time (in a temporary
folder) or by hand before running SpeechBrain's own recipe tester:

    python tests/recipe_samples.py                 # writes tests/samples/ (git-ignored)
    python tests/recipe_samples.py --root /tmp/samples --datasets HABLA

The builders form a registry keyed by the CSV's ``Dataset`` column: adding a
dataset means adding one function decorated with ``@sample_builder("Name")``
that writes a small tree into the folder it is given, and rows whose flags
include ``--data_folder=tests/samples/Name --ssl_source=tests/samples/ssl/...``.
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lobes.testing.synthetic import make_synthetic_asvspoof5, make_synthetic_la  # noqa: E402
from lobes.testing.tiny_models import save_tiny_ssl  # noqa: E402

SAMPLE_BUILDERS = {}
SSL_FOLDER = "ssl"
# save_tiny_ssl names its folder from the settings: WavLM, base form, 4 layers.
TINY_SSL_NAME = "tiny-wavlm-base-4l-32d-16c"
DONE_MARKER = ".complete"


def sample_builder(dataset):
    """Registers ``function(folder)`` as the sample-tree builder of ``dataset``."""

    def register(function):
        if dataset in SAMPLE_BUILDERS:
            raise ValueError(f"two sample builders for {dataset!r}")
        SAMPLE_BUILDERS[dataset] = function
        return function

    return register


# The trees are as small as a row can run on (both classes in every split):
# a row's cost is mostly its trials.


@sample_builder("ASVspoof2019")
def asvspoof2019_sample(folder):
    counts = {"train": 3, "dev": 2, "eval": 2}
    make_synthetic_la(folder, counts, counts, seconds=(0.5, 0.8), seed=3)


@sample_builder("ASVspoof5")
def asvspoof5_sample(folder):
    counts = {"train": 3, "dev": 2, "eval": 2}
    make_synthetic_asvspoof5(folder, counts, counts, seconds=(0.5, 0.8), seed=3)


@sample_builder("CtrSVDD")
def ctrsvdd_sample(folder):
    from test_ctrsvdd_prepare import build_ctrsvdd_tree

    build_ctrsvdd_tree(Path(folder))


@sample_builder("HABLA")
def habla_sample(folder):
    from test_habla_prepare import build_full_release, fixture_entries

    # One bona fide file and one TTS spoof per speaker, plus the issue-16
    # layout variant (a TTS-VC method subfolder): 21 files.
    entries = [e for e in fixture_entries() if e["method"] in ("-", "TTS") and not e["utt"].endswith("1")]
    entries.append(dict(
        utt="TTS-StarGAN-pef_00301_5512761628_TTS-arf_00295_0004", key="spoof", method="TTS-StarGAN",
        target="pef_00301", speakers={"pef_00301", "arf_00295"}, folder="TTS-VC/TTS-StarGAN/Peru-Argentina",
    ))
    build_full_release(Path(folder), entries=entries)


@sample_builder("PartialSpoof")
def partialspoof_sample(folder):
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "recipes", "PartialSpoof"))
    from synthetic_partialspoof import make_partialspoof_tree

    make_partialspoof_tree(folder, {"train": (2, 2), "dev": (2, 2), "eval": (2, 2)}, seconds=(0.4, 0.8), seed=1)


@sample_builder("SceneFake")
def scenefake_sample(folder):
    from test_scenefake_prepare import build_folder_tree

    build_folder_tree(Path(folder))  # train, dev, eval (seen) and test (unseen)


def build_one(folder, build):
    """Runs ``build`` into a fresh folder beside ``folder``, then moves it in
    place, so an interrupted build never leaves a half tree that looks done."""
    if os.path.isfile(os.path.join(folder, DONE_MARKER)):
        return folder
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".building-")
    try:
        build(staging)
        Path(staging, DONE_MARKER).touch()
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
    return folder


def build_samples(root, datasets=None):
    """Writes ``root/<Dataset>`` for each dataset (all registered ones by
    default) and the tiny SSL model; returns ``{dataset: folder}``.

    Trees already complete are kept. An unknown dataset is an error naming
    the registered ones.
    """
    datasets = sorted(SAMPLE_BUILDERS) if datasets is None else list(datasets)
    unknown = [d for d in datasets if d not in SAMPLE_BUILDERS]
    if unknown:
        raise KeyError(
            f"no sample builder for {unknown}; registered: {sorted(SAMPLE_BUILDERS)} "
            f"(add one with @sample_builder in {os.path.abspath(__file__)})"
        )
    ssl = save_tiny_ssl(os.path.join(root, SSL_FOLDER), "wavlm")
    if os.path.basename(ssl) != TINY_SSL_NAME:
        raise RuntimeError(f"tiny SSL saved as {ssl}; the recipe rows expect {TINY_SSL_NAME}")
    return {d: build_one(os.path.join(root, d), SAMPLE_BUILDERS[d]) for d in datasets}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=os.path.join(HERE, "samples"))
    parser.add_argument("--datasets", nargs="*", help=f"default: all of {sorted(SAMPLE_BUILDERS)}")
    args = parser.parse_args(argv)
    for dataset, folder in build_samples(args.root, args.datasets).items():
        print(f"{dataset}: {folder}")


if __name__ == "__main__":
    main()
