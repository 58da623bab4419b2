"""Release folders (lobes.release): written from the shared tiny trained run,
loaded with SpoofDetector.from_pretrained and lobes.inference.cli, verified, and
refused when damaged; model folders whose YAML names code run nothing."""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import HUB_COMMIT, REPO, make_hub_cache
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lobes import release as release_cli
from lobes.inference import cli as detect
from lobes.inference.detector import SpoofDetector
from lobes.inference.release import (
    ENCODER_WEIGHTS,
    FUSION_HEAD_WEIGHTS,
    GOLDEN_TOLERANCE,
    ReleaseError,
    write_release,
)

MALICIOUS = 'pwned: !apply:os.system ["id > pwned.txt"]\n'
HUB_ID = "lobes-test/tiny-release"


@pytest.fixture(scope="module")
def run_folder(trained):
    return trained[0]


@pytest.fixture(scope="module")
def release(run_folder, tmp_path_factory):
    """A float32 release of the trained run, and the summary its writer returned."""
    out = tmp_path_factory.mktemp("release") / "tiny-release"
    summary = write_release(run_folder, out)
    return out, summary


@pytest.fixture(scope="module")
def eval_paths(run_folder):
    with open(run_folder / "manifests" / "eval.csv", newline="") as fin:
        return [row["wav"] for row in csv.DictReader(fin)]


@pytest.fixture(scope="module")
def run_detector(run_folder):
    return SpoofDetector.from_output_folder(run_folder)


def copy_release(release, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(release[0], target)
    return target


def test_release_scores_as_the_run_folder(release, run_folder, run_detector, eval_paths):
    released = SpoofDetector.from_pretrained(release[0])
    expected = [r.score for r in run_detector.score_files(eval_paths)]
    got = released.score_files(eval_paths)
    assert [r.score for r in got] == pytest.approx(expected, abs=1e-5)
    # Windows too, and the calibrated outputs of the run's calibration.
    windowed = released.score_file(eval_paths[0], window=0.5, hop=0.25)
    assert windowed.window_scores == pytest.approx(
        run_detector.score_file(eval_paths[0], window=0.5, hop=0.25).window_scores, abs=1e-5)
    calibration = json.loads((release[0] / "calibration.json").read_text())
    run_calibration = json.loads((run_folder / "calibration.json").read_text())
    assert (calibration["a"], calibration["b"]) == (run_calibration["a"], run_calibration["b"])
    result = got[0]
    assert result.llr == pytest.approx(calibration["a"] * result.score + calibration["b"])
    outputs = released.outputs
    assert result.posterior == pytest.approx(outputs.posterior(result.llr))
    assert outputs.prior == pytest.approx(0.6551724, abs=1e-6)  # ASVspoof 5 effective prior
    assert release[1]["max_abs_difference_to_run"] < 1e-5


def test_encoder_file_holds_only_layers_up_to_n(release, tiny_ssl):
    config = json.loads((release[0] / "config.json").read_text())
    assert config["n_layers"] == 2 and config["full_depth"] == 4
    with safe_open(str(release[0] / ENCODER_WEIGHTS), framework="pt") as weights:
        names = list(weights.keys())
    layers = {int(name.split(".")[2]) for name in names if name.startswith("encoder.layers.")}
    assert layers == {0, 1}
    assert any(name.startswith("feature_extractor.conv_layers.") for name in names)
    assert any(name.startswith("encoder.pos_conv_embed.") for name in names)
    with safe_open(os.path.join(tiny_ssl, "model.safetensors"), framework="pt") as full:
        assert {int(n.split(".")[2]) for n in full.keys() if n.startswith("encoder.layers.")} == {0, 1, 2, 3}
    summary = release[1]
    assert summary["parameters"] < summary["full_model_parameters"]
    card = (release[0] / "README.md").read_text()
    assert card.startswith("---\n") and "pipeline_tag: audio-classification" in card
    assert f"{summary['parameters']:,}" in card and "arXiv:2502.03559" in card


def test_verify_passes_fresh_and_fails_after_one_weight_changed(release, tmp_path, capsys):
    assert release_cli.main(["--verify", str(release[0])]) == 0
    assert f"3 of 3 golden scores within {GOLDEN_TOLERANCE:g}" in capsys.readouterr().err

    altered = copy_release(release, tmp_path)
    path = str(altered / ENCODER_WEIGHTS)
    weights = load_file(path)
    name = "encoder.layers.0.feed_forward.output_dense.bias"
    weights[name] = weights[name].clone()
    weights[name][0] += 1.0  # one weight of the encoder
    save_file(weights, path, metadata={"format": "pt"})
    # Its recorded hash refuses it at load, naming the file ...
    changed = rf"{ENCODER_WEIGHTS}: its SHA-256 differs from the one .*config.json records"
    with pytest.raises(ReleaseError, match=changed):
        SpoofDetector.from_pretrained(altered)
    # ... and without hashes (a release written before they were recorded), the golden scores do.
    config = json.loads((altered / "config.json").read_text())
    del config["sha256"]
    (altered / "config.json").write_text(json.dumps(config))
    assert release_cli.main(["--verify", str(altered)]) == 1
    err = capsys.readouterr().err
    assert "error: golden clip" in err and "difference" in err and f"> tolerance {GOLDEN_TOLERANCE:g}" in err


def test_refuses_non_empty_out_without_force(run_folder, release, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert release_cli.main([str(run_folder), "--out", str(out)]) == 2
    assert "is not empty: give --force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert release_cli.main([str(run_folder), "--out", str(out), "--force", "--dtype", "float16"]) == 0
    assert not (out / "keep.txt").exists()
    with safe_open(str(out / ENCODER_WEIGHTS), framework="pt") as weights:
        assert str(weights.get_tensor(next(iter(weights.keys()))).dtype) == "torch.float16"
    assert release_cli.main(["--verify", str(out)]) == 0


def _truncate(folder):
    path = folder / ENCODER_WEIGHTS
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "not a complete safetensors file"


def _remove_head(folder):
    path = folder / FUSION_HEAD_WEIGHTS
    path.unlink()
    return path, "is missing"


def _newer_format(folder):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["format_version"] += 1
    path.write_text(json.dumps(config))
    return path, "newer than this lobes reads"


def _other_head_size(folder):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["head"]["options"]["hidden_size"] = 64
    path.write_text(json.dumps(config))
    return folder / FUSION_HEAD_WEIGHTS, "does not fit the release's config.json: shape mismatch"


@pytest.mark.parametrize("damage", [_truncate, _remove_head, _newer_format, _other_head_size])
def test_damaged_release_is_refused_naming_the_file(release, eval_paths, tmp_path, capsys, monkeypatch, damage):
    folder = copy_release(release, tmp_path)
    path, message = damage(folder)
    with pytest.raises(ReleaseError, match=message) as caught:
        SpoofDetector.from_pretrained(folder)
    assert str(path) in str(caught.value)

    def no_audio(*args, **kwargs):
        raise AssertionError("audio was read before the model was checked")

    for module in ("detector", "scoring", "streaming"):
        monkeypatch.setattr(f"lobes.inference.{module}.read_audio", no_audio)
    assert detect.main([str(folder), eval_paths[0], "--no-progress", "--num-workers", "0"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_run_folder_without_a_checkpoint_is_refused(run_folder, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(run_folder, folder, ignore=shutil.ignore_patterns("CKPT+*"))
    with pytest.raises(FileNotFoundError, match="no CKPT"):
        SpoofDetector.from_output_folder(folder)
    checkpoint = next((run_folder / "save").glob("CKPT+*"))
    shutil.copytree(checkpoint, folder / "save" / checkpoint.name)
    (folder / "save" / checkpoint.name / "head.ckpt").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(RuntimeError, match=r"cannot be loaded: head.ckpt is truncated"):
        SpoofDetector.from_output_folder(folder)


def test_the_malicious_yaml_is_live_code_for_hyperpyyaml(tmp_path, monkeypatch):
    # The payload of the tests below does run when HyperPyYAML loads it, so
    # their "nothing ran" is a real check.
    from hyperpyyaml import load_hyperpyyaml

    monkeypatch.chdir(tmp_path)
    load_hyperpyyaml(MALICIOUS)
    assert (tmp_path / "pwned.txt").exists()


def _plant(folder):
    with open(folder / "hyperparams.yaml", "a", encoding="utf-8") as fout:
        fout.write(MALICIOUS)


def test_malicious_yaml_runs_nothing_when_loading(run_folder, release, eval_paths, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    evil_run = tmp_path / "evil_run"
    shutil.copytree(run_folder, evil_run)
    _plant(evil_run)
    detector = SpoofDetector.from_output_folder(evil_run)
    assert detector.score_file(eval_paths[0]).score == pytest.approx(
        SpoofDetector.from_output_folder(run_folder).score_file(eval_paths[0]).score, abs=1e-6)
    assert "!apply:os.system ignored, not run" in caplog.text and "hyperparams.yaml, line" in caplog.text
    assert detect.main([str(evil_run), eval_paths[0], "--no-progress", "--num-workers", "0"]) == 0

    # A branch folder of a multi-depth run reads the run's YAML above it.
    evil_multi = tmp_path / "evil_multi"
    (evil_multi / "N2" / "save").mkdir(parents=True)
    text = (run_folder / "hyperparams.yaml").read_text().replace("\nn_layers: 2", "\nn_layers: [1, 2]")
    (evil_multi / "hyperparams.yaml").write_text(text + MALICIOUS)
    with pytest.raises(FileNotFoundError, match="no CKPT"):
        SpoofDetector.from_output_folder(evil_multi / "N2")

    # A release never reads a YAML, even one planted in it.
    evil_release = copy_release(release, tmp_path, "evil_release")
    (evil_release / "hyperparams.yaml").write_text(MALICIOUS)
    SpoofDetector.from_pretrained(evil_release)
    assert detect.main([str(evil_release), eval_paths[0], "--no-progress", "--num-workers", "0"]) == 0
    assert release_cli.main([str(evil_run), "--out", str(tmp_path / "from_evil")]) == 0
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.slow
def test_malicious_yaml_runs_nothing_under_the_cli(run_folder, eval_paths, tmp_path):
    evil = tmp_path / "evil"
    shutil.copytree(run_folder, evil)
    _plant(evil)
    result = subprocess.run(
        [sys.executable, "-m", "lobes.detect", str(evil), eval_paths[0], "--no-progress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "!apply:os.system ignored, not run" in result.stderr
    assert not (tmp_path / "pwned.txt").exists()


def _hub_cache(release, tmp_path):
    """A hub cache holding the release as ``HUB_ID``."""
    cache = tmp_path / "hub"
    make_hub_cache(cache, HUB_ID, release[0])
    return cache


def test_hub_id_loads_offline_from_the_cache(release, eval_paths, tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = _hub_cache(release, tmp_path)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    detector = SpoofDetector.from_pretrained(HUB_ID, cache_dir=str(cache))
    assert detector.release_folder == str(cache / f"models--{HUB_ID.replace('/', '--')}" / "snapshots" / HUB_COMMIT)
    local = SpoofDetector.from_pretrained(release[0])
    assert detector.score_file(eval_paths[0]).score == local.score_file(eval_paths[0]).score
    with pytest.raises(FileNotFoundError, match="neither a local folder nor in the hub cache"):
        SpoofDetector.from_pretrained("lobes-test/not-cached", cache_dir=str(cache))


@pytest.mark.slow
def test_detect_takes_a_hub_id_offline_with_calibrated_output(release, eval_paths, tmp_path):
    cache = _hub_cache(release, tmp_path)
    out = tmp_path / "scores.txt"
    env = {**os.environ, "PYTHONPATH": REPO, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    command = [sys.executable, "-m", "lobes.detect", HUB_ID, *eval_paths, "--output", "prob",
               "--out", str(out), "--no-progress", "--num-workers", "0"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    header, *lines = out.read_text().splitlines()
    assert header.startswith("# lobes.detect --output prob: PATH<TAB>posterior probability of bona fide")
    assert "Bayes threshold at bona fide prior 0.655172" in header
    local = SpoofDetector.from_pretrained(release[0]).score_files(eval_paths)
    assert [line.split("\t")[0] for line in lines] == eval_paths
    for line, result in zip(lines, local):
        _, prob, verdict = line.split("\t")
        assert float(prob) == pytest.approx(result.posterior, abs=1e-6)
        assert verdict == ("bonafide" if result.posterior >= 0.5 else "spoof")


def test_detect_output_columns(release, eval_paths, tmp_path, capsys):
    detector = SpoofDetector.from_pretrained(release[0])
    results = detector.score_files(eval_paths)
    default, llr = tmp_path / "default.txt", tmp_path / "llr.txt"
    common = ["--no-progress", "--num-workers", "0"]
    assert detect.main([str(release[0]), *eval_paths, "--out", str(default), *common]) == 0
    # Without --output: today's format, raw logits and no header.
    assert [line.split("\t") for line in default.read_text().splitlines()] == [
        [path, f"{r.score:.6f}"] for path, r in zip(eval_paths, results)]
    assert detect.main([str(release[0]), *eval_paths, "--out", str(llr), "--output", "llr",
                        "--threshold", "0.0", *common]) == 0
    header, *lines = llr.read_text().splitlines()
    assert "calibrated log-likelihood ratio" in header and "bonafide if the value >= 0.0" in header
    assert [line.split("\t") for line in lines] == [
        [path, f"{r.llr:.6f}", "bonafide" if r.llr >= 0.0 else "spoof"] for path, r in zip(eval_paths, results)]
    capsys.readouterr()
    assert detect.main([str(release[0]), eval_paths[0], "--output", "prob", "--prior", "1.5", *common]) == 2
    assert "--prior must be" in capsys.readouterr().err


def test_a_run_folder_that_recorded_head_type_loads(run_folder, run_detector, eval_paths, tmp_path):
    """Run folders written when a YAML named its head twice (``head_type: ffn``
    beside a nested ``head_class``) load and score as before."""
    folder = tmp_path / "old"
    shutil.copytree(run_folder, folder)
    hparams = folder / "hyperparams.yaml"
    lines = hparams.read_text().splitlines()
    (anchor,) = [line for line in lines if line.startswith("head_class: &")]
    alias = "*" + anchor.split("&", 1)[1].split()[0]
    old = [
        "head_type: ffn" if line == anchor else line.replace(alias, "!name:lobes.models.heads.FFNHead")
        for line in lines
    ]
    hparams.write_text("\n".join(old) + "\n")
    assert "head_type: ffn" in hparams.read_text() and alias not in hparams.read_text()
    loaded = SpoofDetector.from_output_folder(folder)
    assert loaded.model_spec.head_type == "ffn"
    assert [r.score for r in loaded.score_files(eval_paths)] == pytest.approx(
        [r.score for r in run_detector.score_files(eval_paths)], abs=1e-6)


# --- outputs that must not destroy inputs or lose work -------------------------

COMMON = ["--no-progress", "--num-workers", "0"]


def test_release_refuses_an_out_that_is_or_lies_inside_the_run(run_folder, tmp_path, capsys):
    for out in (run_folder, run_folder / "release", run_folder.parent):
        assert release_cli.main([str(run_folder), "--out", str(out), "--force"]) == 2
        assert "is, holds or lies inside the run folder" in capsys.readouterr().err
    assert (run_folder / "results.json").is_file() and list((run_folder / "save").glob("CKPT*"))


def test_detect_checks_out_before_any_work(release, eval_paths, tmp_path, capsys, monkeypatch):
    """A folder, a device or a parent that is a file is refused at once; a
    second writer is refused before a model loads."""
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(detect, "_load_detector", no_model)
    (tmp_path / "a_file").write_text("x")
    for out, message in [(tmp_path, "is a folder"), ("/dev/null", "is not a regular file"),
                         (tmp_path / "a_file" / "scores.txt", "is a file, not a folder")]:
        assert detect.main([str(release[0]), eval_paths[0], "--out", str(out), *COMMON]) == 2
        assert message in capsys.readouterr().err
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    from lobes.utils.output_lock import OutputLock

    held = OutputLock(str(tmp_path / "scores.txt"))
    held.acquire()
    try:
        assert detect.main([str(release[0]), eval_paths[0], "--out", str(tmp_path / "scores.txt"), *COMMON]) == 2
        assert "scores.txt" in capsys.readouterr().err
    finally:
        held.release()


def test_detect_writes_every_name_once_and_keeps_modes_and_links(release, eval_paths, tmp_path, capsys):
    folder = tmp_path / "audio"
    folder.mkdir()
    bad_name = os.path.join(os.fsencode(str(folder)), b"bad\xff\xfe.wav")
    shutil.copy(eval_paths[0], bad_name)
    shutil.copy(eval_paths[1], folder / "good.wav")
    target = tmp_path / "real_scores.txt"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    link = tmp_path / "scores.txt"
    os.symlink(target, link)
    # The same file three times, and a threshold that is not a number.
    assert detect.main([str(release[0]), str(folder), str(folder / "good.wav"), str(folder / "good.wav"),
                        "--out", str(link), *COMMON]) == 0
    err = capsys.readouterr().err
    assert "good.wav is listed 3 times: scored once" in err and "scored 2 of 2 files" in err
    lines = target.read_text(encoding="utf-8").splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == [f"{folder}/bad\\xff\\xfe.wav", f"{folder}/good.wav"]
    assert os.path.islink(link) and os.stat(target).st_mode & 0o777 == 0o640
    with pytest.raises(SystemExit):
        detect.main([str(release[0]), eval_paths[0], "--threshold", "nan", *COMMON])
    assert "expected a finite number, got 'nan'" in capsys.readouterr().err


def test_a_non_finite_score_is_an_error_naming_the_file(eval_paths):
    from lobes.inference.scoring import DetectionResult

    class NanDetector:
        def score_files(self, files, errors=None, **kwargs):
            return [DetectionResult(float("nan"), (float("nan"),), (0.0,), 1.0), None][: len(files)]

    scores, errors = detect.score_paths(NanDetector(), eval_paths[:1], batch_size=1)
    assert scores == {} and "non-finite score (nan)" in str(errors[eval_paths[0]])


def test_an_empty_or_truncated_calibration_is_named(tmp_path):
    from lobes.evaluation.calibration import read_calibration

    for text in ("", '{"a": 1.0, "b'):
        (tmp_path / "calibration.json").write_text(text)
        with pytest.raises(ValueError, match=r"calibration.json is not a calibration file \(not valid JSON"):
            read_calibration(tmp_path)


@pytest.mark.parametrize("field, value, message", [
    ("normalize_waveform", "false", "normalize_waveform must be true or false, got 'false'"),
    ("crop", {"max_samples": -5, "eval_crop": "first"}, "crop.max_samples must be a whole number"),
    ("crop", {"max_samples": 16000, "eval_crop": "bogus"}, "crop.eval_crop must be one of first, random, full"),
    ("n_layers", 10**9, r"n_layers must be a whole number in \[1, "),
])
def test_release_config_values_are_checked_at_load(release, tmp_path, field, value, message):
    """A config value of the wrong type or range is refused at load, naming
    the field, before any model is built."""
    folder = copy_release(release, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config[field] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ReleaseError, match=message):
        SpoofDetector.from_pretrained(folder)


def test_a_local_release_never_touches_the_hub_cache(release, eval_paths, monkeypatch):
    import lobes.models.ssl

    def no_cache():
        raise AssertionError("the hub cache was looked up for a local folder")

    monkeypatch.setattr(lobes.models.ssl, "_hf_cache_dir", no_cache)
    detector = SpoofDetector.from_pretrained(release[0])
    assert len(detector.score_files(eval_paths[:1])) == 1
