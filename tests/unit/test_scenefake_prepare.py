"""SceneFake prepare step against fixture trees in both accepted forms."""

import doctest
import importlib.util
import os
import sys

import numpy as np
import pytest
import soundfile as sf

RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "SceneFake")
sys.path.insert(0, RECIPE)
import scenefake_prepare  # noqa: E402
from scenefake_prepare import prepare_scenefake  # noqa: E402

from lobes.dataio.prepare import (  # noqa: E402
    AudioError,
    ProtocolError,
    prepared_splits,  # noqa: E402
    read_manifest,
)


def load_train_module():
    # Every recipe has a train.py: load this one under its own module name.
    spec = importlib.util.spec_from_file_location("scenefake_train", os.path.join(RECIPE, "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scenefake_train = load_train_module()

# Folder form: split -> (real stems, fake stems). A fake may share its stem
# with the real recording it was made from (dev, eval).
FOLDER_SPLITS = {
    "train": (["SSB0005_0001", "SSB0005_0002", "SSB0011_0003"], ["SSB0005_0104", "SSB0011_0105"]),
    "dev": (["SSB0073_0001", "SSB0073_0002"], ["SSB0073_0001", "SSB0080_0009"]),
    "eval": (["SSB0241_0001", "SSB0241_0002"], ["SSB0241_0001", "SSB0246_0005", "SSB0246_0006"]),
    "test": (["SSB0375_0001", "SSB0375_0002", "SSB0380_0003"], ["SSB0380_0104"]),
}

# Flat form: split -> label-list lines, in the three line forms accepted.
FLAT_LISTS = {
    "train": ["SF_T_0001.wav real", "SF_T_0002.wav real", "SF_T_0003.wav fake", "SF_T_0004.wav fake",
              "SF_T_0005.wav fake"],
    "dev": ["SF_D_0001 bonafide", "SF_D_0002 spoof", "SF_D_0003 Fake"],
    "eval": ["SSB0241 SF_E_0001 - - bonafide", "SSB0241 SF_E_0002 - S01 spoof",
             "SSB0246 SF_E_0003 - S02 spoof"],
}


def write_wav(path, rng, seconds=0.5, sample_rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * rng.standard_normal(int(seconds * sample_rate)), sample_rate)


def build_folder_tree(root, splits=FOLDER_SPLITS, real="real", fake="fake"):
    """``root/<split>/{real,fake}/<stem>.wav`` for every stem of ``splits``."""
    rng = np.random.default_rng(0)
    for split, (real_stems, fake_stems) in splits.items():
        for folder, stems in ((real, real_stems), (fake, fake_stems)):
            for stem in stems:
                write_wav(root / split / folder / f"{stem}.wav", rng)
    return root


def build_flat_tree(root, lists=FLAT_LISTS, list_folder="", list_name="{}_label.txt"):
    """``root/wav/*.wav`` plus one label list per split."""
    rng = np.random.default_rng(1)
    for split, lines in lists.items():
        for line in lines:
            fields = line.split()
            name = fields[0] if len(fields) == 2 else fields[1]
            write_wav(root / "wav" / (name if name.endswith(".wav") else f"{name}.wav"), rng)
        list_path = root / list_folder / list_name.format(split)
        list_path.parent.mkdir(parents=True, exist_ok=True)
        list_path.write_text("\n".join(lines) + "\n")
    return root


def expected_counts(splits):
    return {split: {"bonafide": len(real), "spoof": len(fake)} for split, (real, fake) in splits.items()}


def test_folder_form_with_seen_and_unseen_test_sets(tmp_path):
    build_folder_tree(tmp_path / "data")
    out = tmp_path / "out"
    counts = prepare_scenefake(str(tmp_path / "data"), str(out))
    assert counts == expected_counts(FOLDER_SPLITS)
    assert prepared_splits(str(out)) == ["train", "dev", "eval", "test"]
    dev = read_manifest(out / "dev.csv")
    # The shared stem gives two trials, told apart by their class folder.
    assert [(r["ID"], r["label"], r["attack"]) for r in dev] == [
        ("fake/SSB0073_0001", "spoof", "fake"),
        ("fake/SSB0080_0009", "spoof", "fake"),
        ("real/SSB0073_0001", "bonafide", "-"),
        ("real/SSB0073_0002", "bonafide", "-"),
    ]
    assert float(dev[0]["duration"]) == pytest.approx(0.5)
    assert dev[0]["wav"].endswith(os.path.join("dev", "fake", "SSB0073_0001.wav"))


def test_folder_form_in_a_scenefake_subfolder_with_seen_tests_only(tmp_path):
    splits = {k: v for k, v in FOLDER_SPLITS.items() if k != "test"}
    build_folder_tree(tmp_path / "SceneFake", splits, real="bonafide", fake="spoof")
    out = tmp_path / "out"
    counts = prepare_scenefake(str(tmp_path), str(out))
    assert counts == expected_counts(splits)
    assert prepared_splits(str(out)) == ["train", "dev", "eval"]
    assert not (out / "test.csv").exists()


@pytest.mark.parametrize("list_folder, list_name", [("", "{}_label.txt"), ("labels", "{}.txt")])
def test_flat_form_reads_every_line_form(tmp_path, list_folder, list_name):
    build_flat_tree(tmp_path, list_folder=list_folder, list_name=list_name)
    out = tmp_path / "out"
    counts = prepare_scenefake(str(tmp_path), str(out))
    assert counts == {
        "train": {"bonafide": 2, "spoof": 3},
        "dev": {"bonafide": 1, "spoof": 2},
        "eval": {"bonafide": 1, "spoof": 2},
    }
    assert prepared_splits(str(out)) == ["train", "dev", "eval"]
    rows = {r["ID"]: r for split in counts for r in read_manifest(out / f"{split}.csv")}
    assert (rows["SF_T_0001"]["label"], rows["SF_T_0001"]["attack"]) == ("bonafide", "-")
    assert (rows["SF_D_0003"]["label"], rows["SF_D_0003"]["attack"]) == ("spoof", "fake")
    assert (rows["SF_E_0002"]["speaker"], rows["SF_E_0002"]["attack"]) == ("SSB0241", "S01")
    assert rows["SF_E_0003"]["wav"] == str(tmp_path / "wav" / "SF_E_0003.wav")


def test_test_split_names_come_from_the_caller(tmp_path):
    build_folder_tree(tmp_path, {**FOLDER_SPLITS, "eval_unseen": FOLDER_SPLITS["test"]})
    out = tmp_path / "out"
    counts = prepare_scenefake(str(tmp_path), str(out), test_splits=["eval_unseen"])
    assert list(counts) == ["train", "dev", "eval_unseen"]
    assert counts["eval_unseen"] == {"bonafide": 3, "spoof": 1}


@pytest.mark.parametrize("split", ["dev", "test"])
def test_one_class_folder_split_is_refused(tmp_path, split):
    real, _ = FOLDER_SPLITS[split]
    build_folder_tree(tmp_path, {**FOLDER_SPLITS, split: (real, [])})
    with pytest.raises(ValueError, match=rf"split '{split}' \(.*{split}\) has only bonafide trials "
                                         rf"\(bonafide={len(real)}, spoof=0\)"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "out"))
    assert not (tmp_path / "out" / "prepare_options.json").exists()


def test_one_class_label_list_is_refused(tmp_path):
    build_flat_tree(tmp_path, {**FLAT_LISTS, "eval": ["SF_E_0001 fake", "SF_E_0002 fake"]})
    with pytest.raises(ValueError, match=r"split 'eval' \(.*eval_label\.txt\) has only spoof trials"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "out"))


def test_bad_label_names_file_and_line(tmp_path):
    build_flat_tree(tmp_path, {**FLAT_LISTS, "dev": FLAT_LISTS["dev"] + ["SF_D_0004 noisy"]})
    with pytest.raises(ProtocolError, match=r"dev_label\.txt:4: label 'noisy' is not one of"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "out"))


def test_bad_column_count_and_duplicates_name_file_and_line(tmp_path):
    build_flat_tree(tmp_path, {**FLAT_LISTS, "dev": FLAT_LISTS["dev"] + ["SF_D_0001.wav real"]})
    with pytest.raises(ProtocolError, match=r"dev_label\.txt:4: utterance SF_D_0001 already listed on line 1"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "out"))
    (tmp_path / "dev_label.txt").write_text("SF_D_0001 real extra\n")
    with pytest.raises(ProtocolError, match=r"dev_label\.txt:1: expected 'NAME LABEL'"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "out"))


def test_unknown_class_folder_is_named(tmp_path):
    build_folder_tree(tmp_path)
    write_wav(tmp_path / "train" / "noisy" / "x.wav", np.random.default_rng(2))
    with pytest.raises(ValueError, match=r"train/noisy: unknown class folder 'noisy'"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "out"))


def test_missing_splits_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no SceneFake data"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "out"))
    build_folder_tree(tmp_path, {"train": FOLDER_SPLITS["train"], "eval": FOLDER_SPLITS["eval"]})
    with pytest.raises(FileNotFoundError, match=r"folder form.*: no dev split"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "out"))
    build_folder_tree(tmp_path, {"dev": FOLDER_SPLITS["dev"]})
    with pytest.raises(FileNotFoundError, match=r"none of the test splits \['unseen'\]"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "out"), test_splits=["unseen"])


def test_ambiguous_forms_are_refused(tmp_path):
    build_flat_tree(tmp_path)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "dev.txt").write_text("SF_D_0001 real\n")
    with pytest.raises(ValueError, match="several label lists for split 'dev'"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "out"))
    build_folder_tree(tmp_path)
    with pytest.raises(ValueError, match="holds both wav/ .* and train/"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "out"))


def test_missing_audio_fails_or_is_listed_and_skipped(tmp_path):
    build_flat_tree(tmp_path)
    os.remove(tmp_path / "wav" / "SF_T_0004.wav")
    with pytest.raises(AudioError, match=r"SF_T_0004\.wav"):
        prepare_scenefake(str(tmp_path), str(tmp_path / "out"))
    out = tmp_path / "out2"
    counts = prepare_scenefake(str(tmp_path), str(out), skip_missing=True)
    assert counts["train"] == {"bonafide": 2, "spoof": 2}
    assert (out / "train_missing.txt").read_text() == "SF_T_0004\n"


def test_rerun_with_same_data_is_a_no_op(tmp_path):
    build_folder_tree(tmp_path)
    out = tmp_path / "out"
    first = prepare_scenefake(str(tmp_path), str(out))
    before = (out / "train.csv").stat().st_mtime_ns
    assert prepare_scenefake(str(tmp_path), str(out)) == first
    assert (out / "train.csv").stat().st_mtime_ns == before
    # A test split that disappears changes the discovered splits: prepare again.
    for folder in ("real", "fake"):
        for path in (tmp_path / "test" / folder).iterdir():
            path.unlink()
        (tmp_path / "test" / folder).rmdir()
    (tmp_path / "test").rmdir()
    assert list(prepare_scenefake(str(tmp_path), str(out))) == ["train", "dev", "eval"]


def test_recipe_test_set_mapping():
    assert scenefake_train.present_test_sets(
        {"seen": "eval", "unseen": "test"}, ["train", "dev", "eval", "test"]
    ) == {"seen": "eval", "unseen": "test"}
    with pytest.raises(ValueError, match="same split twice"):
        scenefake_train.check_test_sets({"seen": "eval", "again": "eval"})
    with pytest.raises(ValueError, match="empty"):
        scenefake_train.check_test_sets({})


@pytest.mark.parametrize("module", [scenefake_prepare, scenefake_train])
def test_docstring_examples(module):
    # The recipes folder is outside pytest's doctest paths: run them here.
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_files_in_scene_subfolders_are_read_labelled_by_class_and_reported(tmp_path, caplog):
    build_folder_tree(tmp_path)
    rng = np.random.default_rng(3)
    write_wav(tmp_path / "eval" / "fake" / "street" / "SSB0241_0009.wav", rng)
    write_wav(tmp_path / "eval" / "fake" / "street" / "SSB0241_0010.wav", rng)
    write_wav(tmp_path / "train" / "real" / "studio" / "SSB0005_0009.wav", rng)
    with caplog.at_level("WARNING"):
        counts = prepare_scenefake(str(tmp_path), str(tmp_path / "out"))
    expected = expected_counts(FOLDER_SPLITS)
    expected["eval"]["spoof"] += 2
    expected["train"]["bonafide"] += 1
    assert counts == expected
    rows = {r["ID"]: r for r in read_manifest(tmp_path / "out" / "eval.csv")}
    assert rows["fake/street/SSB0241_0009"]["label"] == "spoof"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "SceneFake: 3 files sit in subfolders of their class folders (read, labelled by the class "
        "folder): eval/fake/street/ 2, train/real/studio/ 1"
    ]
