"""Bad input never ruins a run silently: each test feeds one kind of bad
input and checks the clear error or safe outcome."""

import glob
import os
import time

import pytest

from lobes.training.options import check_options, plain_hparams
from lobes.training.recipe import load_recipe

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FFN_YAML = os.path.join(REPO, "recipes", "ASVspoof2019", "hparams", "ffn.yaml")


# --- options checked at start-up ------------------------------------------

@pytest.mark.parametrize("yaml_file", sorted(glob.glob(os.path.join(REPO, "recipes", "*", "hparams", "*.yaml"))))
def test_every_recipe_yaml_passes_the_start_up_check(yaml_file):
    check_options(plain_hparams(yaml_file, f"data_folder: {REPO}"), yaml_file)


@pytest.mark.parametrize("override, named, allowed", [
    ("--eval_crop=frist", "eval_crop='frist'", "first, random, full"),
    ("--train_crop=middle", "train_crop='middle'", "first, random, full"),
    ("--selection_metric=eer", "selection_metric='eer'", "EER, loss"),
    ("--class_weights=[0.5]", "class_weights=[0.5]", "2 positive weights"),
    ("--class_weights=[0.5, -1]", "class_weights=[0.5, -1]", "2 positive weights"),
    ("--max_samples=0", "max_samples=0", "greater than 0"),
    ("--batch_size=0", "batch_size=0", "greater than 0"),
    ("--lr=-1", "lr=-1", "greater than 0"),
    ("--number_of_epochs=0", "number_of_epochs=0", "greater than 0"),
    ("--head_type=aasist", "--head_type is not an option", "names its head once, as head_class"),
    ("--numbr_of_epochs=1", "--numbr_of_epochs is not an option of ffn.yaml", "did you mean --number_of_epochs?"),
    ("--n_layers=2.5", "n_layers=2.5", "must be a whole number of layers"),
    ("--n_layers=0", "n_layers=0", "must be a whole number of layers"),
    ("--n_layers=[2, 2]", "n_layers=[2, 2]", "lists a depth more than once"),
    ("--data_folder=/nonexistent", "data_folder='/nonexistent'", "is not a folder"),
    ("--lr=0.1", "--lr is given more than once", "more than once"),
    ("--nonfinite_audio=drop", "nonfinite_audio='drop'", "allowed: error, skip"),
    ('--augment={rawboost: {p: 2.0}}', "augment.rawboost.p", "probability in [0, 1]"),
])
def test_wrong_option_fails_in_seconds_naming_it(tmp_path, override, named, allowed):
    # A hub id that cannot be loaded offline: were any model built, the run
    # would fail differently (and slowly).
    data = [] if override.startswith("--data_folder") else [f"--data_folder={tmp_path}"]
    argv = [FFN_YAML, *data, f"--output_folder={tmp_path / 'out'}", "--ssl_source=no-such/model", override]
    if override == "--lr=0.1":
        argv.append("--lr=0.2")
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        load_recipe(argv)
    assert time.perf_counter() - start < 10
    message = str(exc.value.code)
    assert message.startswith("error: ") and named in message and allowed in message
    assert not (tmp_path / "out").exists()  # refused before anything was created


# --- non-finite audio, training guards, preparation -------------------------

import glob as _glob  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from conftest import smoke_overrides  # noqa: E402

from lobes.dataio import audio_checks  # noqa: E402
from lobes.dataio.audio_checks import NonFiniteAudioError  # noqa: E402
from lobes.dataio.dataset import load_audio, make_datasets  # noqa: E402
from lobes.dataio.prepare import AudioError, read_manifest  # noqa: E402
from lobes.testing.synthetic import make_synthetic_la  # noqa: E402
from lobes.training.brain import SpoofBrain  # noqa: E402
from lobes.training.finite_guard import NonFiniteTrainingError  # noqa: E402
from lobes.utils.run_folder import rank_checkpoint  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "recipes", "ASVspoof2019"))
from asvspoof2019_prepare import prepare_asvspoof2019  # noqa: E402

COUNTS = {"train": 4, "dev": 3, "eval": 3}


def la_files(la_data, split):
    return sorted(_glob.glob(str(la_data / "LA" / f"ASVspoof2019_LA_{split}" / "flac" / "*.flac")))


def poison(path, value=np.nan, n=100):
    """Rewrites ``path`` as a float WAV (under its own name) with ``n`` bad samples."""
    data, rate = sf.read(path, dtype="float32")
    data[:n] = value
    sf.write(path, data, rate, format="WAV", subtype="FLOAT")


def truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


@pytest.fixture
def la_data(tmp_path):
    make_synthetic_la(tmp_path / "la", COUNTS, COUNTS, seconds=(0.6, 1.2), seed=3)
    return tmp_path / "la"


def test_nan_audio_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.zeros(1600, dtype="float32"), 16000, subtype="FLOAT")
    poison(str(path), np.inf, n=3)
    with pytest.raises(NonFiniteAudioError, match=r"nan\.wav holds 3 non-finite samples"):
        load_audio(path)


def test_nan_eval_file_names_protocol_and_manifest_lines(la_data, tmp_path):
    prepare_asvspoof2019(str(la_data), str(tmp_path / "m"))
    bad = la_files(la_data, "eval")[1]
    poison(bad)
    hparams = {"manifest_folder": str(tmp_path / "m"), "train_crop": "first",
               "eval_crop": "first", "max_samples": 16000}
    datasets = make_datasets(hparams, ("eval",))
    with pytest.raises(NonFiniteAudioError, match=r"ASVspoof2019\.LA\.cm\.eval\.trl\.txt:\d+ "
                       r"\(utterance LA_E_\d+, \S+eval\.csv:\d+\): .*"
                       + os.path.basename(bad) + " holds 100 non-finite"):
        for index in range(len(datasets["eval"])):
            datasets["eval"][index]
    # A manifest prepared before manifests had the origin column: its own line.
    manifest = tmp_path / "m" / "eval.csv"
    rows = [line.rsplit(",", 1)[0] for line in manifest.read_text().splitlines()]
    assert rows[0].endswith("speaker")
    manifest.write_text("\n".join(rows) + "\n")
    datasets = make_datasets(hparams, ("eval",))
    with pytest.raises(NonFiniteAudioError, match=r"eval\.csv:\d+ \(utterance LA_E_\d+\): .*"
                       + os.path.basename(bad) + " holds 100 non-finite"):
        for index in range(len(datasets["eval"])):
            datasets["eval"][index]


def test_nonfinite_skip_option_lists_and_leaves_out(la_data, tmp_path, monkeypatch):
    prepare_asvspoof2019(str(la_data), str(tmp_path / "m"))
    bad = la_files(la_data, "eval")[0]
    poison(bad)
    hparams = {"manifest_folder": str(tmp_path / "m"), "train_crop": "first",
               "eval_crop": "first", "max_samples": 16000, "nonfinite_audio": "skip"}
    dataset = make_datasets(hparams, ("eval",))["eval"]
    assert len(dataset) == 2 * COUNTS["eval"] - 1
    listing = (tmp_path / "m" / "eval.csv.nonfinite.txt").read_text()
    assert os.path.basename(bad) in listing and len(listing.splitlines()) == 1
    # Cached: a rerun decodes nothing.
    monkeypatch.setattr(audio_checks, "scan_file", lambda *a: pytest.fail("decoded again"))
    assert len(make_datasets(hparams, ("eval",))["eval"]) == 2 * COUNTS["eval"] - 1


def test_truncated_flac_found_at_preparation_with_protocol_line(la_data, tmp_path):
    bad = la_files(la_data, "eval")[2]
    truncate(bad)
    with pytest.raises(AudioError, match=r"ASVspoof2019\.LA\.cm\.eval\.trl\.txt:\d+: .*"
                       + os.path.basename(bad)):
        prepare_asvspoof2019(str(la_data), str(tmp_path / "m"))


def test_integrity_pass_is_cached(la_data, tmp_path, monkeypatch):
    prepare_asvspoof2019(str(la_data), str(tmp_path / "m"), splits=("dev",))
    cache = json.loads((tmp_path / "m" / "dev_integrity.json").read_text())["tail"]
    assert len(cache) == 2 * COUNTS["dev"]
    os.remove(tmp_path / "m" / "dev.csv")  # force a rerun of the preparation
    monkeypatch.setattr(audio_checks, "scan_file", lambda *a: pytest.fail("decoded again"))
    prepare_asvspoof2019(str(la_data), str(tmp_path / "m"), splits=("dev",))


def test_edited_protocol_makes_preparation_run_again(la_data, tmp_path):
    out = tmp_path / "m"
    prepare_asvspoof2019(str(la_data), str(out), splits=("dev",))
    protocol = la_data / "LA" / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.dev.trl.txt"
    lines = protocol.read_text().splitlines(keepends=True)
    protocol.write_text("".join(lines[:-1]))  # one trial fewer
    prepare_asvspoof2019(str(la_data), str(out), splits=("dev",))
    assert len((out / "dev.csv").read_text().splitlines()) == len(lines)  # header + trials - 1
    before = (out / "prepare_options.json").stat().st_mtime_ns
    prepare_asvspoof2019(str(la_data), str(out), splits=("dev",))  # unchanged: skipped
    assert (out / "prepare_options.json").stat().st_mtime_ns == before


def fake_brain(**attrs):
    counter = types.SimpleNamespace(current=2)
    return types.SimpleNamespace(hparams=types.SimpleNamespace(epoch_counter=counter), **attrs)


def test_nonfinite_loss_stops_training_naming_the_batch():
    brain = fake_brain(batch_ids=["LA_T_1", "LA_T_2"])
    with pytest.raises(NonFiniteTrainingError, match="LA_T_1, LA_T_2"):
        SpoofBrain.check_loss_isfinite(brain, torch.tensor(float("nan")))


def test_nonfinite_parameter_stops_training_naming_the_batch():
    modules = torch.nn.ModuleDict({"head": torch.nn.Linear(2, 2)})
    modules.head.weight.data[0, 0] = float("nan")
    brain = fake_brain(modules=modules)
    batch = types.SimpleNamespace(id=["LA_T_9"])
    with pytest.raises(NonFiniteTrainingError, match=r"head\.weight .*LA_T_9"):
        SpoofBrain.on_fit_batch_end(brain, batch, None, None, should_step=True)


def test_options_training_would_ignore_are_refused():
    """SpeechBrain options acting on the YAML's modules, which the training
    step (encoder, then the branch models) does not run."""
    brain = SpoofBrain.__new__(SpoofBrain)
    brain.data_parallel_backend = brain.jit = False
    brain.compile = True
    with pytest.raises(ValueError, match="--compile and --jit are not supported in training"):
        brain._refuse_unsupported_options()


def test_nonfinite_checkpoint_is_neither_saved_nor_selected():
    saved = []
    checkpointer = types.SimpleNamespace(save_and_keep_only=lambda **kw: saved.append(kw))
    brain = fake_brain(checkpointer=checkpointer)
    with pytest.raises(NonFiniteTrainingError, match="not saved"):
        SpoofBrain._select_and_stop(brain, 1, {".": {"EER": 100.0, "loss": float("nan")}})
    assert saved == []
    nan = {"EER": float("nan"), "loss": float("nan")}
    worse = {"EER": 49.0, "loss": 5.0}
    assert max([nan, worse], key=lambda m: rank_checkpoint(m, "EER")) is worse
    assert max([worse, nan], key=lambda m: rank_checkpoint(m, "loss")) is worse


def run_train(la_data, tiny_ssl, output, *extra):
    recipe = os.path.join(REPO, "recipes", "ASVspoof2019")
    command = [sys.executable, os.path.join(recipe, "train.py"),
               os.path.join(recipe, "hparams", "ffn.yaml"),
               *smoke_overrides(la_data, tiny_ssl, output, "--number_of_epochs=1", *extra)]
    return subprocess.run(command, cwd=output.parent, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_nan_training_file_fails_the_run_naming_it(la_data, tiny_ssl, tmp_path):
    bad = la_files(la_data, "train")[0]
    poison(bad)
    result = run_train(la_data, tiny_ssl, tmp_path / "run")
    assert result.returncode != 0
    output = result.stdout + result.stderr  # SpeechBrain logs the error to stdout
    assert "train.csv:" in output and os.path.basename(bad) in output
    assert "holds 100 non-finite samples" in output
    # The protocol line that lists the file, the line a user would fix.
    protocol = "ASVspoof2019.LA.cm.train.trn.txt"
    line = next(n for n, text in enumerate(open(_glob.glob(f"{la_data}/**/{protocol}", recursive=True)[0]), 1)
                if os.path.splitext(os.path.basename(bad))[0] in text.split())
    assert f"{protocol}:{line} (utterance" in output
    assert not _glob.glob(str(tmp_path / "run" / "save" / "CKPT*"))


# --- a trained tiny run (nonfinite_audio: skip) and lobes.detect -------------

import signal  # noqa: E402

from lobes.inference import cli as detect  # noqa: E402
from lobes.utils.output_lock import OutputLock  # noqa: E402


@pytest.fixture(scope="module")
def skipped_run(tmp_path_factory, tiny_ssl):
    """A 1-epoch tiny run with one NaN training file and nonfinite_audio: skip."""
    root = tmp_path_factory.mktemp("skip_run")
    make_synthetic_la(root / "la", COUNTS, COUNTS, seconds=(0.6, 1.2), seed=4)
    bad = la_files(root / "la", "train")[0]
    poison(bad)
    result = run_train(root / "la", tiny_ssl, root / "run", "--nonfinite_audio=skip")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return root / "run", root / "la", bad, result.stdout + result.stderr


@pytest.mark.slow
def test_skip_option_trains_without_the_nan_file_and_says_so(skipped_run):
    output, _, bad, log = skipped_run
    assert "1 of 8 files hold NaN/inf samples" in log
    listing = (output / "manifests" / "train.csv.nonfinite.txt").read_text()
    assert os.path.basename(bad).split(".")[0] in listing
    results = json.loads((output / "results.json").read_text())
    assert all(np.isfinite(results["layer_weights"]))
    assert np.isfinite(results["test_sets"]["eval"]["eer"])


def good_files(la_data, folder, n=2):
    folder.mkdir(exist_ok=True)
    for path in la_files(la_data, "eval")[:n]:
        os.link(path, folder / os.path.basename(path))


def run_detect(argv, seconds=300):
    """``detect.main(argv)``, failing (not hanging) after ``seconds``."""
    def hung(*_):
        raise TimeoutError("lobes.detect hung")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        return detect.main([*argv, "--no-progress", "--num-workers=0"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.slow
def test_detect_refuses_nan_and_inf_files(skipped_run, tmp_path, capsys):
    output, la_data, _, _ = skipped_run
    folder = tmp_path / "audio"
    good_files(la_data, folder)
    sf.write(folder / "nan.wav", np.full(8000, np.nan, dtype="float32"), 16000, subtype="FLOAT")
    sf.write(folder / "inf.wav", np.full(8000, np.inf, dtype="float32"), 16000, subtype="FLOAT")
    out = tmp_path / "scores.txt"
    assert run_detect([str(output), str(folder), "--out", str(out), "--threshold", "0"]) == 1
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and not any(line.split("\t")[1] in ("nan", "inf") for line in lines)
    err = capsys.readouterr().err
    assert "nan.wav holds 8000 non-finite samples" in err and "inf.wav holds 8000" in err
    nan_line = next(line for line in err.splitlines() if "nan.wav holds" in line)
    assert nan_line.count("nan.wav") == 1, nan_line  # the file is named once


@pytest.mark.slow
def test_detect_skips_fifo_and_refuses_line_breaking_names(skipped_run, tmp_path, capsys):
    output, la_data, _, _ = skipped_run
    folder = tmp_path / "audio"
    good_files(la_data, folder)
    os.mkfifo(folder / "pipe.wav")
    (folder / "nl").mkdir()
    forged = folder / "x\tnl\nnl" / "victim.wav 99.000000 bonafide"
    forged.parent.mkdir()
    os.link(la_files(la_data, "eval")[0], str(forged) + ".wav")
    os.symlink("loop.wav", folder / "loop.wav")
    out = tmp_path / "scores.txt"
    assert run_detect([str(output), str(folder), "--out", str(out), "--threshold", "0"]) == 1
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    assert all(len(line.split("\t")) == 3 and line.startswith(str(folder)) for line in lines)
    err = capsys.readouterr().err
    assert "skipped: " + str(folder / "pipe.wav") + ": a FIFO" in err
    assert "loop.wav: symlink loop" in err
    assert "its name holds a TAB, newline or carriage return" in err


@pytest.mark.parametrize("option, value, message", [
    ("--window", "0.001", "--window must be at least 0.1 seconds, got 0.001"),
    ("--window", "0", "--window must be at least 0.1 seconds, got 0"),
    ("--hop", "0", "--hop must be at least 0.01 seconds, got 0"),
    ("--window", "nan", "--window must be at least 0.1 seconds, got nan"),
    ("--batch-size", "0", "must be 1 or more, got 0"),
])
def test_detect_checks_windows_and_batch_size_in_the_parser(tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit) as exc:
        detect.parse_args([str(tmp_path), str(tmp_path), option, value])
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_second_writer_to_the_same_out_fails(skipped_run, tmp_path, capsys):
    output, la_data, _, _ = skipped_run
    folder = tmp_path / "audio"
    good_files(la_data, folder)
    out = tmp_path / "scores.txt"
    out.write_text("first run's scores\n")
    with OutputLock(out):  # a first run still writing
        assert run_detect([str(output), str(folder), "--out", str(out)]) == 2
    assert "another run is writing" in capsys.readouterr().err
    assert out.read_text() == "first run's scores\n"
    assert run_detect([str(output), str(folder), "--out", str(out)]) == 0  # lock given back
    assert len(out.read_text().splitlines()) == 2 and not os.path.exists(f"{out}.lock")


# --- file names from data stay in their folder; no data file is unpickled ---

from lobes.evaluation.score_fusion import fuse  # noqa: E402
from lobes.evaluation.scores import ScoreRecord, write_scores  # noqa: E402
from lobes.utils.safe_paths import UnsafePathError  # noqa: E402


def test_protocol_id_leaving_the_audio_folder_is_refused(la_data, tmp_path):
    protocol = la_data / "LA" / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.dev.trl.txt"
    with open(protocol, "a") as fout:
        fout.write("LA_0001 ../../../../etc/x - - bonafide\n")
    with pytest.raises(UnsafePathError, match=r"dev\.trl\.txt:\d+: file name '\.\./\.\./\.\./\.\./etc/x\.flac' leaves"):
        prepare_asvspoof2019(str(la_data), str(tmp_path / "m"), splits=("dev",))


def test_fuse_refuses_a_set_name_leaving_out(tmp_path):
    rng = np.random.default_rng(0)
    runs = []
    for index in range(2):
        run = tmp_path / "runs" / f"run{index}"
        sets = {"dev": "dev", "../../escaped": "escaped"}
        for name, file_name in sets.items():
            records = [ScoreRecord(f"u{i}", "-" if i % 2 else "A01", "bonafide" if i % 2 else "spoof",
                                   float(rng.normal())) for i in range(40)]
            write_scores(str(run / "scores" / f"{file_name}.txt"), records)
        # scores/../../escaped.txt exists beside the run folder
        write_scores(str(tmp_path / "runs" / "escaped.txt"), records)
        (run / "results.json").write_text(json.dumps({"test_sets": {n: {} for n in sets}}))
        runs.append(str(run))
    with pytest.raises(UnsafePathError, match=r"results\.json: test set name '\.\./\.\./escaped'"):
        fuse(runs, str(tmp_path / "out" / "fused"))
    assert not (tmp_path / "out").exists()


def test_partialspoof_labels_are_read_without_running_code(tmp_path):
    sys.path.insert(0, os.path.join(REPO, "recipes", "PartialSpoof"))
    from partialspoof_prepare import SegmentLabelError, load_segment_labels

    marker = tmp_path / "code_ran"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "dev_seglab_0.64.npy"
    np.save(path, {"LA_D_1": np.array(["1"]), "x": Evil()}, allow_pickle=True)
    with pytest.raises(SegmentLabelError, match="refused to load: its pickle calls posix.mkdir"):
        load_segment_labels(path)
    assert not marker.exists()
    np.save(path, {"LA_D_1": np.array(["1", "1"])})  # the official format still loads
    assert load_segment_labels(path)["LA_D_1"].tolist() == ["1", "1"]


# --- SceneFake: one audio folder per split with a `<id> real|fake` list ------

# Each split's trials of the SceneFake tests; the counts prepare must find.
SCENEFAKE_LISTS = {"train": [("A1", "real"), ("A2", "fake"), ("A3", "fake")],
                   "dev": [("D1", "real"), ("D2", "fake")],
                   "eval": [("E1", "fake"), ("E2", "real")]}
SCENEFAKE_COUNTS = {"train": {"bonafide": 1, "spoof": 2}, "dev": {"bonafide": 1, "spoof": 1},
                    "eval": {"bonafide": 1, "spoof": 1}}


def scenefake_prepare():
    """The SceneFake recipe's ``prepare_scenefake``."""
    sys.path.insert(0, os.path.join(REPO, "recipes", "SceneFake"))
    from scenefake_prepare import prepare_scenefake

    return prepare_scenefake


def test_scenefake_split_folders_with_label_lists_are_read(tmp_path):
    prepare_scenefake = scenefake_prepare()
    root = tmp_path / "SceneFake"
    rng = np.random.default_rng(0)
    for split, entries in SCENEFAKE_LISTS.items():
        # eval: audio one level down (a scene folder), list inside the split folder
        audio = root / split / ("street" if split == "eval" else "")
        audio.mkdir(parents=True, exist_ok=True)
        for utt_id, _ in entries:
            sf.write(audio / f"{utt_id}.wav", 0.1 * rng.standard_normal(3200), 16000)
        listing = (root / split / f"{split}.txt") if split == "eval" else (root / f"{split}_label.txt")
        listing.write_text("".join(f"{u} {label}\n" for u, label in entries))
    counts = prepare_scenefake(str(tmp_path), str(tmp_path / "m"), test_splits=("eval",))
    assert counts == SCENEFAKE_COUNTS
    rows = {r["ID"]: r for r in read_manifest(tmp_path / "m" / "eval.csv")}
    assert rows["E1"]["label"] == "spoof" and rows["E1"]["wav"].endswith("eval/street/E1.wav")


def test_scenefake_split_folders_with_one_list_of_any_name_are_read(tmp_path):
    """Each split folder holds its audio and one label list under a name of
    its own: the list whose lines name the split's files is read."""
    prepare_scenefake = scenefake_prepare()
    root = tmp_path / "SceneFake"
    rng = np.random.default_rng(0)
    for split, entries in SCENEFAKE_LISTS.items():
        (root / split).mkdir(parents=True)
        for utt_id, _ in entries:
            sf.write(root / split / f"{utt_id}.wav", 0.1 * rng.standard_normal(3200), 16000)
        (root / split / "README.txt").write_text("SceneFake, acoustic scenes replaced\n")
        (root / split / f"{split}_protocol_v2.lst").write_text("".join(f"{u} {lab}\n" for u, lab in entries))
    counts = prepare_scenefake(str(tmp_path), str(tmp_path / "m"), test_splits=("eval",))
    assert counts == SCENEFAKE_COUNTS
    # Two lists that both name the files: which one decides? Refused, naming them.
    (root / "dev" / "copy.txt").write_text("D1 fake\nD2 real\n")
    with pytest.raises(ValueError, match=r"holds several label lists .*copy.txt.*dev_protocol_v2.lst"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "m2"), test_splits=("eval",))


# --- checkpoint files that run code -------------------------------------------

EVIL_PICKLE = '''
import os, sys, torch

class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {sys.argv[2]}",))

torch.save({"weight": Evil()}, sys.argv[1])
'''


def plant_pickle(path, marker):
    """Replaces ``path`` by a checkpoint whose unpickling creates ``marker``."""
    subprocess.run([sys.executable, "-c", EVIL_PICKLE, str(path), str(marker)], check=True, timeout=120)


@pytest.mark.slow
def test_no_checkpoint_is_unpickled_even_when_the_environment_allows_it(la_data, tiny_ssl, tmp_path):
    """With TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (torch then unpickles any
    torch.load that does not say weights_only), a pickle planted where a
    checkpoint is read runs nothing: the SSL folder's model.ckpt when the
    recipe builds the encoder, a checkpoint of the run when training resumes,
    and the head of a run folder that lobes.detect loads. Each is refused with
    one line naming the file, without a traceback."""
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    marker = tmp_path / "pwned"
    recipe = os.path.join(REPO, "recipes", "ASVspoof2019")

    def train(ssl, output):
        command = [sys.executable, os.path.join(recipe, "train.py"), os.path.join(recipe, "hparams", "ffn.yaml"),
                   *smoke_overrides(la_data, ssl, output, "--number_of_epochs=1")]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)

    def assert_refused(done, path):
        assert done.returncode != 0
        assert done.stderr.strip().splitlines()[-1] == (
            f"error: {path}: refused to load: it is not a plain tensor archive "
            "(its pickle calls posix.system; a checkpoint must not run code)"
        ), done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        assert not marker.exists()

    # A folder without .safetensors or .bin weights: SpeechBrain reads its .ckpt.
    ssl = tmp_path / "ssl"
    shutil.copytree(tiny_ssl, ssl, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    plant_pickle(ssl / "model.ckpt", marker)
    assert_refused(train(ssl, tmp_path / "run_a"), ssl / "model.ckpt")

    output = tmp_path / "run"
    assert train(tiny_ssl, output).returncode == 0
    (checkpoint,) = (output / "save").glob("CKPT*")
    plant_pickle(checkpoint / "head.ckpt", marker)
    detect_command = [sys.executable, "-m", "lobes.detect", str(output), la_files(la_data, "eval")[0]]
    done = subprocess.run(detect_command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert_refused(done, checkpoint / "head.ckpt")
    plant_pickle(checkpoint / "optimizer.ckpt", marker)
    shutil.copy(checkpoint / "optimizer.ckpt", checkpoint / "head.ckpt")
    done = train(tiny_ssl, output)  # resumes from the planted checkpoint
    assert not marker.exists(), done.stderr[-3000:]
    assert done.returncode != 0 and "refused to load: it is not a plain tensor archive" in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr


def test_a_depth_beyond_the_local_ssl_is_refused_in_seconds(tmp_path, tiny_ssl):
    argv = [FFN_YAML, f"--data_folder={tmp_path}", f"--output_folder={tmp_path / 'out'}",
            f"--ssl_source={tiny_ssl}", "--n_layers=10"]
    with pytest.raises(SystemExit) as exc:
        load_recipe(argv)
    assert str(exc.value.code) == (
        "error: n_layers=10 must be a whole number of layers (or a list of them), "
        f"from 1 to 4 (the layers of {tiny_ssl})"
    )
