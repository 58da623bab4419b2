"""End-to-end smoke tests of the ASVspoof 2019 recipe with a tiny local SSL."""

import json
import os
import subprocess
import sys

import pytest
import torch
from codec_support import require_codecs
from conftest import LA_COUNTS, REPO, assert_calibrated, smoke_overrides

from lobes.evaluation.scores import read_scores


# aasist.yaml: trained by its recipe-test row (tests/recipes/ASVspoof2019.csv); the
# checks below need one head only.
@pytest.mark.parametrize("hparams", ["ffn.yaml"])
def test_train_select_and_score(la_data, tiny_ssl, tmp_path, run_recipe, hparams):
    output = tmp_path / "run"
    log = run_recipe(
        "ASVspoof2019", hparams, tmp_path, *smoke_overrides(la_data, tiny_ssl, output, "--number_of_epochs=1")
    )
    records = read_scores(output / "scores" / "eval.txt")
    protocol = la_data / "LA" / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt"
    protocol_ids = [line.split()[1] for line in protocol.read_text().splitlines()]
    assert sorted(r.utt_id for r in records) == sorted(protocol_ids)
    assert len(records) == 2 * LA_COUNTS["eval"]

    results = json.loads((output / "results.json").read_text())
    eval_results = results["test_sets"]["eval"]
    assert 0.0 <= eval_results["eer"] <= 100.0
    assert eval_results["n_trials"] == 2 * LA_COUNTS["eval"]
    assert set(eval_results["eer_by_attack"]) == {"A07", "A08"}
    assert eval_results["min_tdcf"] >= 0.0  # the synthetic tree has ASV scores
    assert_calibrated(results, output, "eval")
    # 5 trials a class: the bootstrap says why it gives no interval (speakers from the manifest).
    intervals = eval_results["intervals"]
    assert intervals["unit"] == "speaker" and intervals["replicates"] == 1000
    assert "too few trials" in intervals["pooled"]["eer"]["unavailable"]
    assert set(intervals["calibrated"]["pooled"]) == {"act_dcf", "cllr"}
    tdcf = eval_results["min_tdcf_interval"]
    assert tdcf["formulation"] == 2019 and "too few trials" in tdcf["unavailable"]
    assert len(results["layer_weights"]) == 2
    assert sum(results["layer_weights"]) == pytest.approx(1.0)
    assert results["config"]["n_layers"] == 2
    # A single run is a plan of one branch, but not part of a multi-depth or branched run.
    assert not {"multi_depth_run", "branched_run"} & set(results["config"])
    assert results["selected_checkpoint"]["epoch"] == 1
    assert "== eval: 10 trials" in log

    # Frozen SSL: the checkpoint holds the fusion only, never SSL weights.
    import torch

    (checkpoint,) = (output / "save").glob("CKPT*")
    ssl_state = torch.load(checkpoint / "ssl.ckpt", weights_only=True)
    assert set(ssl_state) == {
        "fusion.weight_logits",
        "fusion.norm.weight",
        "fusion.norm.bias",
        "fusion.norm.running_mean",
        "fusion.norm.running_var",
        "fusion.norm.num_batches_tracked",
    }


def test_rerun_resumes_and_overwrites_scores(la_data, tiny_ssl, tmp_path, run_recipe):
    output = tmp_path / "run"
    args = smoke_overrides(la_data, tiny_ssl, output)
    run_recipe("ASVspoof2019", "ffn.yaml", tmp_path, *args, "--number_of_epochs=1")
    log = run_recipe("ASVspoof2019", "ffn.yaml", tmp_path, *args, "--number_of_epochs=2")
    assert "Going into epoch 2" in log
    assert "Going into epoch 1" not in log
    train_log = (output / "train_log.txt").read_text().splitlines()
    assert [line.split(",")[0] for line in train_log] == ["epoch: 1", "epoch: 2"]
    assert len(read_scores(output / "scores" / "eval.txt")) == 2 * LA_COUNTS["eval"]


def test_debug_mode_runs_two_short_epochs(la_data, tiny_ssl, tmp_path, run_recipe):
    output = tmp_path / "run"
    log = run_recipe("ASVspoof2019", "aasist.yaml", tmp_path, *smoke_overrides(la_data, tiny_ssl, output, "--debug"))
    assert "Going into epoch 2" in log
    assert len(read_scores(output / "scores" / "eval.txt")) > 0


def test_ssl_aasist_setting_with_augmentation(la_data, tiny_ssl, tmp_path, run_recipe):
    """aasist_rawboost.yaml (RawBoost mode 5 on train and dev) plus codec
    round trips on half the utterances, with a tiny fine-tuned SSL; recipe
    and SpeechBrain options (--device, --precision) side by side."""
    require_codecs(*recipe_codecs())
    output = tmp_path / "run"
    log = run_recipe(
        "ASVspoof2019", "aasist_rawboost.yaml", tmp_path,
        *smoke_overrides(la_data, tiny_ssl, output, "--number_of_epochs=1",
                         "--augment={codec: {p: 0.5}}", "--device=cpu", "--precision=fp32", "--seed=42"),
    )
    assert "augmenting train, dev: rawboost p=1.0, codec p=0.5 (before_crop)" in log
    assert len(read_scores(output / "scores" / "eval.txt")) == 2 * LA_COUNTS["eval"]
    results = json.loads((output / "results.json").read_text())
    assert results["config"]["freeze_ssl"] is False and results["config"]["seed"] == 42
    assert 0.0 <= results["test_sets"]["eval"]["eer"] <= 100.0
    # Fine-tuned: the encoder's transformer layers are saved with the head.
    (checkpoint,) = (output / "save").glob("CKPT*")
    state = torch.load(checkpoint / "ssl.ckpt", weights_only=True)
    assert any(key.startswith("encoder.model.encoder.layers.1.") for key in state)


def recipe_codecs():
    """The codecs of the ASVspoof2019 recipe's default ``augment.codec.codecs``."""
    from lobes.training.options import plain_hparams

    path = os.path.join(REPO, "recipes", "ASVspoof2019", "hparams", "aasist_rawboost.yaml")
    hparams = plain_hparams(path, "data_folder: unused")
    return list(hparams["augment"]["codec"]["codecs"])


def test_a_codec_the_build_lacks_stops_start_up_by_name(tmp_path):
    """A codec the installed FFmpeg cannot run (a made-up one, registered in
    the process before the recipe starts) stops the recipe at start-up with
    one line naming it, the PyAV version and the fix: no traceback, and
    before the data, the SSL or the output folder are touched (an empty data
    folder, an SSL that does not exist, no output folder made)."""
    recipe = os.path.join(REPO, "recipes", "ASVspoof2019")
    argv = [
        "train.py", os.path.join(recipe, "hparams", "ffn.yaml"), f"--data_folder={tmp_path}",
        f"--ssl_source={tmp_path / 'no_ssl'}", f"--output_folder={tmp_path / 'run'}",
        "--augment={codec: {p: 1.0, codecs: {pcm_mulaw: [64000], madeup: [64000]}}}",
    ]
    script = (
        "import runpy, sys\n"
        "import lobes.augment.codec as codec\n"
        "codec.CODECS['madeup'] = codec.CodecSpec('libmadeup_enc', 'madeup_dec', 16000, 's16')\n"
        f"sys.argv = {argv!r}\n"
        f"runpy.run_path({os.path.join(recipe, 'train.py')!r}, run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    import av

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    # The override merges into the recipe's list: a build lacking one of
    # those names it in the same line.
    assert last.startswith(
        f"error: augment.codec.codecs: the FFmpeg build of the installed PyAV {av.__version__} cannot run "
    )
    assert "madeup (no encoder libmadeup_enc and no decoder madeup_dec)" in last
    assert last.endswith(
        "from augment.codec.codecs, or install the locked versions (pip install --no-deps -r requirements/lock.txt)"
    )
    assert not (tmp_path / "run").exists()
