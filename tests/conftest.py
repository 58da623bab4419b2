"""Shared fixtures: tiny local SSL models and a recipe runner."""

import importlib.util
import os
import subprocess
import sys

# One torch thread per process, set before torch is imported (and inherited
# by the recipes the tests start): the README's command runs two pytest-xdist
# workers, often beside a two-rank torchrun job, on two cores, and torch's
# default of one thread per core has them spin against each other (the whole
# suite: 390 s -> 293 s here). A test that needs more threads asks for them.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from lobes.testing.tiny_models import save_tiny_ssl  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Test modules share builders across groups (a recipe test builds its data
# tree with the prepare test's builder): every group folder is importable.
for _group in ("unit", "integration", "recipes"):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), _group))
MODEL_FORMS = [
    (model_type, stable)
    for model_type in ("wav2vec2", "hubert", "wavlm")
    for stable in (False, True)
]


def smoke_overrides(data_folder, ssl, output, *extra, n_layers=2):
    """Recipe overrides for a fast smoke run with a tiny SSL (1 s crops)."""
    return (
        f"--data_folder={data_folder}",
        f"--output_folder={output}",
        f"--ssl_source={ssl}",
        f"--n_layers={n_layers}",
        "--batch_size=4",
        "--max_samples=16000",
        "--num_workers=0",
        *extra,
    )


def load_recipe_module(dataset, script="train.py", name=None):
    """Imports ``recipes/<dataset>/<script>`` under its own module name
    (every recipe has a ``train.py``)."""
    name = name or f"{dataset.lower()}_{os.path.splitext(script)[0]}"
    path = os.path.join(REPO, "recipes", dataset, script)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_calibrated(results, output, name):
    """Test set ``name`` of a run reports minDCF, actDCF and Cllr of raw and
    calibrated scores (calibrated on the run's dev scores), and its
    calibrated score file lists every trial."""
    from lobes.evaluation.scores import read_scores

    metrics = results["test_sets"][name]
    assert "dev" in results["test_sets"]
    for key in ("min_dcf", "act_dcf", "cllr"):
        assert key in metrics and key in metrics["calibrated"]
    assert metrics["calibrated"]["eer"] == pytest.approx(metrics["eer"])  # an increasing map
    assert metrics["calibration"]["a"] > 0
    calibrated = read_scores(os.path.join(output, "scores", f"{name}.calibrated.txt"))
    assert len(calibrated) == metrics["n_trials"]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """(model_type, stable_layer_norm) -> path of a tiny 4-layer model."""
    folder = tmp_path_factory.mktemp("tiny_ssl")
    return {form: save_tiny_ssl(folder, *form) for form in MODEL_FORMS}


@pytest.fixture(scope="session")
def tiny_ssl(tiny_models):
    """Path of one tiny model (WavLM, base form) for recipe smoke tests."""
    return tiny_models[("wavlm", False)]


# Hub ids served offline from a prepared cache (no network in tests): the
# path real users take with e.g. ssl_source=microsoft/wavlm-base-plus.
HUB_SSL_ID = "lobes-test/tiny-wavlm"
HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def make_hub_cache(cache, hub_id, folder):
    """Writes a Hugging Face hub cache at ``cache`` holding ``folder`` as
    ``hub_id`` at ``HUB_COMMIT``, as ``snapshot_download`` leaves it (load it
    with ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE`` set to it); returns the
    snapshot folder."""
    import shutil

    repo = cache / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(HUB_COMMIT)
    shutil.copytree(folder, repo / "snapshots" / HUB_COMMIT)
    return repo / "snapshots" / HUB_COMMIT


@pytest.fixture(scope="session")
def hub_ssl_cache(tmp_path_factory, tiny_ssl):
    """A hub cache holding ``tiny_ssl`` as ``HUB_SSL_ID``."""
    cache = tmp_path_factory.mktemp("hub_cache")
    make_hub_cache(cache, HUB_SSL_ID, tiny_ssl)
    return cache


INFERENCE_COUNTS = {"train": 4, "dev": 3, "eval": 4}
INFERENCE_BATCH_SIZE = 4
INFERENCE_MAX_SAMPLES = 16000


def inference_overrides(la_data, tiny_ssl):
    """Overrides of the ``trained`` run (ASVspoof2019 ffn.yaml, 2 layers, 2 epochs)."""
    return {
        "data_folder": str(la_data),
        "ssl_source": str(tiny_ssl),
        "n_layers": 2,
        "batch_size": INFERENCE_BATCH_SIZE,
        "max_samples": INFERENCE_MAX_SAMPLES,
        "num_workers": 0,
        "number_of_epochs": 2,
    }


# Trials per class and split of the la_data fixture.
LA_COUNTS = {"train": 6, "dev": 4, "eval": 5}


@pytest.fixture(scope="module")
def la_data(tmp_path_factory):
    """A small synthetic ASVspoof 2019 LA tree, ``LA_COUNTS`` trials per
    class, 0.6-1.2 s (the ASVspoof2019 recipe and torchrun tests' data)."""
    from lobes.testing.synthetic import make_synthetic_la

    folder = tmp_path_factory.mktemp("la")
    make_synthetic_la(folder, LA_COUNTS, LA_COUNTS, seconds=(0.6, 1.2), seed=3)
    return folder


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_ssl):
    """(output folder, synthetic data folder) of a 2-epoch tiny ASVspoof2019
    recipe run, trained once per session (tests/test_inference.py and
    tests/test_release.py)."""
    from lobes.testing.synthetic import make_synthetic_la

    root = tmp_path_factory.mktemp("inference")
    la_data = root / "la"
    # Eval files up to 2.5 s, so that some are longer than the 1 s crop.
    make_synthetic_la(la_data, INFERENCE_COUNTS, INFERENCE_COUNTS, seconds=(0.6, 2.5), seed=5)
    output = root / "run"
    recipe = os.path.join(REPO, "recipes", "ASVspoof2019")
    command = [sys.executable, os.path.join(recipe, "train.py"),
               os.path.join(recipe, "hparams", "ffn.yaml"), f"--output_folder={output}",
               *(f"--{key}={value}" for key, value in inference_overrides(la_data, tiny_ssl).items())]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return output, la_data


def _run_recipe(dataset, hparams, cwd, *overrides, script="train.py", timeout=600, env=None):
    """Runs ``recipes/<dataset>/<script> <hparams> <overrides>``; returns its output.

    ``hparams`` may be a path of a YAML of one's own; ``env`` adds variables
    (e.g. a ``PYTHONPATH`` to the user's modules that YAML names). Fails the
    test with the recipe's output when it exits non-zero.
    """
    recipe = os.path.join(REPO, "recipes", dataset)
    command = [
        sys.executable,
        os.path.join(recipe, script),
        os.path.join(recipe, "hparams", hparams),
        *overrides,
    ]
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited with {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result.stdout + result.stderr


@pytest.fixture
def run_recipe():
    """``run_recipe(dataset, hparams_file, cwd, *overrides, script="train.py")``."""
    return _run_recipe


# Tests grouped as SpeechBrain groups them: unit/ (one module at a time,
# seconds), integration/ (trained runs, CLIs, torchrun) and recipes/ (recipe
# smoke runs and the recipe-test rows). Folder markers let a user select
# (`-m unit`, `-m "not recipe"`); `torchrun`, `export` and `slow` are set on
# the tests themselves. The README's test command runs everything.
FOLDER_MARKERS = {"unit": "unit", "integration": "integration", "recipes": "recipe"}


def pytest_collection_modifyitems(config, items):
    tests_root = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        relative = os.path.relpath(str(item.fspath), tests_root)
        marker = FOLDER_MARKERS.get(relative.split(os.sep)[0])
        if marker:
            item.add_marker(marker)
            if marker == "recipe":
                item.add_marker("slow")
