"""SpoofDetector and the python -m lobes.detect CLI against a real recipe output folder."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from conftest import INFERENCE_BATCH_SIZE as BATCH_SIZE
from conftest import INFERENCE_MAX_SAMPLES as MAX_SAMPLES
from conftest import REPO, smoke_overrides
from conftest import inference_overrides as recipe_overrides

from lobes.dataio.dataset import crop_or_tile
from lobes.evaluation.scores import read_scores
from lobes.inference import cli as detect
from lobes.inference.detector import SpoofDetector, read_audio, window_starts
from lobes.testing.synthetic import make_synthetic_la

RECIPE = os.path.join(REPO, "recipes", "ASVspoof2019")
# The ``trained`` run (tests/conftest.py) is shared with tests/test_release.py.


@pytest.fixture(scope="module")
def detector(trained):
    return SpoofDetector.from_output_folder(trained[0], run_opts={"device": "cpu"})


@pytest.fixture(scope="module")
def eval_files(trained):
    """utt_id -> wav path of the recipe's eval manifest, in manifest order."""
    with open(trained[0] / "manifests" / "eval.csv", newline="") as fin:
        return {row["ID"]: row["wav"] for row in csv.DictReader(fin)}


@pytest.fixture(scope="module")
def recipe_scores(trained):
    return {r.utt_id: f"{r.score:.6f}" for r in read_scores(trained[0] / "scores" / "eval.txt")}


def test_loads_recipe_output_folder(trained, detector, tiny_ssl):
    results = json.loads((trained[0] / "results.json").read_text())
    # Two epochs saved; the detector picks the checkpoint the recipe tested.
    assert len(list((trained[0] / "save").glob("CKPT+*"))) >= 1
    assert detector.checkpoint.meta["epoch"] == results["selected_checkpoint"]["epoch"]
    ssl = detector.mods.ssl
    assert ssl.encoder.source == str(tiny_ssl)  # from its source, not a checkpoint copy
    assert ssl.encoder.n_layers == 2
    torch.testing.assert_close(ssl.layer_weights(), torch.tensor(results["layer_weights"]))
    assert not any(m.training for m in detector.mods.modules())
    assert detector.max_samples == MAX_SAMPLES and detector.crop_mode == "first"


def test_scores_identical_to_recipe_score_file(detector, eval_files, recipe_scores):
    results = detector.score_files(list(eval_files.values()), batch_size=BATCH_SIZE)
    mine = {utt: f"{r.score:.6f}" for utt, r in zip(eval_files, results)}
    assert mine == recipe_scores
    # Alone instead of in a batch: the same up to float rounding.
    utt, path = next(iter(eval_files.items()))
    assert detector.score_file(path).score == pytest.approx(float(recipe_scores[utt]), abs=2e-6)


def test_loads_from_hparams_template_and_one_checkpoint(trained, detector, eval_files, tiny_ssl):
    (checkpoint,) = [c for c in (trained[0] / "save").glob("CKPT+*")
                     if str(c) == str(detector.checkpoint.path)]
    other = SpoofDetector.from_hparams(
        os.path.join(RECIPE, "hparams", "ffn.yaml"),
        checkpoint,
        overrides=recipe_overrides(trained[1], tiny_ssl),
        run_opts={"device": "cpu"},
    )
    paths = list(eval_files.values())
    assert [r.score for r in other.score_files(paths)] == [
        r.score for r in detector.score_files(paths)
    ]


def test_resampled_stereo_input(detector, eval_files, tmp_path):
    path = next(iter(eval_files.values()))
    original = read_audio(path)
    up = torchaudio.functional.resample(original, 16000, 44100)
    stereo = tmp_path / "stereo44k.wav"
    sf.write(stereo, torch.stack([up, up], dim=1).numpy(), 44100, subtype="FLOAT")
    restored = read_audio(stereo)
    assert abs(restored.shape[0] - original.shape[0]) <= 1
    n = min(restored.shape[0], original.shape[0])
    # Band-limited round trip: close away from the edges.
    assert torch.allclose(restored[100 : n - 100], original[100 : n - 100], atol=2e-2)
    assert detector.score_file(stereo).score == pytest.approx(
        detector.score_file(path).score, abs=2e-3
    )

    # 8 kHz tone: twice the samples at 16 kHz, same pitch.
    tone = tmp_path / "tone8k.flac"
    sf.write(tone, 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000), 8000)
    wav = read_audio(tone)
    assert wav.shape[0] == 16000
    assert int(torch.fft.rfft(wav).abs().argmax()) == 440  # 1 s: bin k = k Hz


def test_long_file_scored_in_windows(detector, eval_files, tmp_path):
    wavs = [read_audio(p) for p in eval_files.values()]
    long_wav = torch.cat(wavs)
    path = tmp_path / "long.wav"
    sf.write(path, long_wav.numpy(), 16000, subtype="FLOAT")
    result = detector.score_file(path, window=1.0, hop=0.75, aggregation="mean")

    starts = window_starts(long_wav.shape[0], 16000, 12000)
    assert len(starts) >= 3 and starts[-1] + 16000 == long_wav.shape[0]
    assert result.window_starts == tuple(s / 16000 for s in starts)
    assert result.duration == pytest.approx(long_wav.shape[0] / 16000)
    expected = detector.score_batch(torch.stack([long_wav[s : s + 16000] for s in starts]))
    torch.testing.assert_close(torch.tensor(result.window_scores), expected, atol=1e-5, rtol=0)
    assert result.score == pytest.approx(float(expected.mean()), abs=1e-6)
    # The windows differ (different speech), so min and mean differ too.
    by_min = detector.score_file(path, window=1.0, hop=0.75, aggregation="min")
    assert by_min.score == pytest.approx(min(result.window_scores), abs=1e-6)
    assert by_min.score < result.score


def test_short_file_window_matches_recipe_crop(detector, eval_files, recipe_scores):
    # A file shorter than the window is tiled to it, as the recipe tiles to max_samples.
    lengths = {u: sf.info(p).frames for u, p in eval_files.items()}
    utt = min(lengths, key=lengths.get)
    assert lengths[utt] < MAX_SAMPLES
    result = detector.score_file(eval_files[utt], window=MAX_SAMPLES / 16000)
    assert result.window_scores == (result.score,)
    assert result.score == pytest.approx(float(recipe_scores[utt]), abs=2e-6)


def test_cli_on_folder_with_a_corrupt_file(trained, eval_files, recipe_scores, tmp_path, capsys):
    folder = tmp_path / "audio"
    (folder / "sub").mkdir(parents=True)
    copies = {}
    for i, (utt, path) in enumerate(eval_files.items()):
        target = folder / ("sub" if i % 2 else "") / f"{utt}.flac"
        shutil.copy(path, target)
        copies[str(target)] = utt
    (folder / "corrupt.wav").write_bytes(b"RIFF not really a wave file")
    sf.write(folder / "sub" / "empty.wav", np.zeros(0), 16000)
    (folder / "notes.txt").write_text("not audio")
    out = tmp_path / "scores.txt"

    code = detect.main([str(trained[0]), str(folder), "--out", str(out),
                        "--threshold", "0.0", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "corrupt.wav" in captured.err and "empty.wav" in captured.err
    assert "holds no samples" in captured.err and "cannot read audio file" in captured.err
    assert f"scored {len(copies)} of {len(copies) + 2} files" in captured.err

    lines = [line.split("\t") for line in out.read_text().splitlines()]
    assert sorted(p for p, *_ in lines) == sorted(copies)
    for path, score, verdict in lines:
        assert score == recipe_scores[copies[path]]
        assert verdict == ("bonafide" if float(score) >= 0.0 else "spoof")
    assert captured.out.splitlines() == out.read_text().splitlines()  # decisions printed


def test_torchscript_export_matches_detector(detector, eval_files, tmp_path):
    path = detector.export_torchscript(tmp_path / "detector.pt")
    scripted = torch.jit.load(path)
    crops = [crop_or_tile(read_audio(p), MAX_SAMPLES) for p in eval_files.values()]
    for crop in crops[:2]:
        expected = detector.score_batch(crop[None])
        torch.testing.assert_close(scripted(crop[None]), expected, atol=1e-5, rtol=0)
    # Different inputs give different scores: the trace did not freeze the output.
    assert float(scripted(crops[0][None])) != float(scripted(crops[1][None]))


def test_cli_without_audio_exits_2(trained, tmp_path, capsys):
    assert detect.main([str(trained[0]), str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_loads_one_depth_of_a_multi_depth_run(tmp_path, tiny_ssl, run_recipe):
    counts = {"train": 4, "dev": 3, "eval": 3}
    make_synthetic_la(tmp_path / "la", counts, counts, seconds=(0.6, 0.9), seed=2)
    output = tmp_path / "multi"
    run_recipe(
        "ASVspoof2019", "ffn.yaml", tmp_path,
        *smoke_overrides(tmp_path / "la", tiny_ssl, output, "--number_of_epochs=1", n_layers="[1, 2]"),
    )
    detector = SpoofDetector.from_output_folder(output / "N2")
    assert len(detector.mods.ssl.layer_weights()) == 2
    expected = {r.utt_id: r.score for r in read_scores(output / "N2" / "scores" / "eval.txt")}
    flac = tmp_path / "la" / "LA" / "ASVspoof2019_LA_eval" / "flac"
    for utt_id, score in list(expected.items())[:3]:
        assert detector.score_file(flac / f"{utt_id}.flac").score == pytest.approx(score, abs=1e-4)
    with pytest.raises(FileNotFoundError, match="N3 does not exist"):
        SpoofDetector.from_output_folder(output / "N3")
    (output / "other").mkdir()
    with pytest.raises(FileNotFoundError, match="nor is it the N<n>/ folder of a multi-depth run"):
        SpoofDetector.from_output_folder(output / "other")


def test_int8_detector_within_bound_and_fp16_refused_on_cpu(trained, detector, eval_files):
    paths = list(eval_files.values())
    reference = np.array([r.score for r in detector.score_files(paths)])
    int8 = SpoofDetector.from_output_folder(trained[0], run_opts={"device": "cpu"}, precision="int8")
    assert int8.precision == "int8" and int8.backend == "eager"
    scores = np.array([r.score for r in int8.score_files(paths)])
    assert np.abs(scores - reference).max() < 5e-2  # the bound stated in tests/unit/test_precision.py
    with pytest.raises(ValueError, match="precision='fp16' needs a CUDA GPU"):
        SpoofDetector.from_output_folder(trained[0], run_opts={"device": "cpu"}, precision="fp16")


def test_files_decoded_in_workers_score_the_same(detector, eval_files, tmp_path):
    paths = list(eval_files.values())
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    in_process = detector.score_files(paths, num_workers=0)
    errors = {}
    in_workers = detector.score_files([paths[0], str(bad), *paths[1:]], num_workers=2,
                                      batch_size=2, errors=errors)
    assert in_workers[1] is None and "cannot read audio file" in errors[str(bad)]
    # Other batch compositions: the same up to float rounding.
    assert [r.score for r in in_workers[:1] + in_workers[2:]] == pytest.approx(
        [r.score for r in in_process], abs=2e-6)
    with pytest.raises(RuntimeError, match="bad.wav"):
        detector.score_files([str(bad)], num_workers=1)


def test_cli_refuses_fp16_on_cpu(trained, eval_files, capsys):
    path = next(iter(eval_files.values()))
    assert detect.main([str(trained[0]), path, "--precision", "fp16", "--no-progress"]) == 2
    assert "precision='fp16' needs a CUDA GPU" in capsys.readouterr().err


@pytest.mark.torchrun
@pytest.mark.slow
def test_cli_under_torchrun_writes_one_merged_output(trained, eval_files, recipe_scores, tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    for utt, path in eval_files.items():
        shutil.copy(path, folder / f"{utt}.flac")
    (folder / "corrupt.wav").write_bytes(b"RIFF broken")
    single, merged = tmp_path / "single.txt", tmp_path / "merged.txt"
    assert detect.main([str(trained[0]), str(folder), "--out", str(single), "--no-progress",
                        "--num-workers", "0"]) == 1
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "lobes.detect", str(trained[0]), str(folder), "--out", str(merged),
               "--num-workers", "1", "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    # The corrupt file fails on its rank; the merged exit code says so.
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.count("could not score") == 1 and "corrupt.wav" in result.stderr
    assert merged.read_text() == single.read_text()  # same files, once each, same order
    lines = [line.split("\t") for line in merged.read_text().splitlines()]
    assert len(lines) == len(eval_files)
    assert {os.path.basename(p)[:-5]: s for p, s in lines} == recipe_scores
