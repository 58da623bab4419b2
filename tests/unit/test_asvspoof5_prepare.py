"""ASVspoof 5 prepare step against fixture trees with the real layout."""

import json
import os
import sys

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "ASVspoof5"))
from asvspoof5_prepare import prepare_asvspoof5  # noqa: E402

from lobes.dataio.prepare import (  # noqa: E402
    AudioError,
    ProtocolError,
    prepared_splits,  # noqa: E402
    read_manifest,
)
from lobes.testing.synthetic import make_synthetic_asvspoof5  # noqa: E402

# Lines in the format of the released protocols (two taken from them).
TSV_LINES = {
    "ASVspoof5.train.tsv": [
        "T_4850 T_0000000000 F - - - AC3 A05 spoof -",
        "T_1234 T_0000000001 M - - - - bonafide bonafide -",
    ],
    "ASVspoof5.dev.track_1.tsv": [
        "D_0461 D_0000000190 M - - - - bonafide bonafide -",
        "D_4461 D_0000000169 F - - - AC1 A14 spoof -",
    ],
    "ASVspoof5.eval.track_1.tsv": [
        "E_0001 E_0000000005 F C08 3 1234 AC2 A20 spoof -",
        "E_0002 E_0000000006 M - - - - bonafide bonafide -",
        "E_0003 E_0000000007 M C01 1 77 - bonafide bonafide -",
    ],
}
METADATA_LINES = {
    "ASVspoof5.train.metadata.txt": [
        "T_4850 T_0000000000 F - A05 spoof",
        "T_1234 T_0000000001 M - - bonafide",
    ],
    "ASVspoof5.dev.metadata.txt": [
        "D_0461 D_0000000190 M - - bonafide",
        "D_4461 D_0000000169 F - A14 spoof",
    ],
}
AUDIO = {"T": "flac_T", "D": "flac_D", "E": "flac_E_eval"}


def build_tree(root, protocols, sample_rate=16000, protocol_folder=""):
    """Protocols (in ``protocol_folder``) and one short flac per listed file."""
    rng = np.random.default_rng(0)
    (root / protocol_folder).mkdir(parents=True, exist_ok=True)
    for name, lines in protocols.items():
        (root / protocol_folder / name).write_text("\n".join(lines) + "\n")
        for line in lines:
            utt_id = line.split()[1]
            folder = root / AUDIO[utt_id[0]]
            folder.mkdir(exist_ok=True)
            sf.write(folder / f"{utt_id}.flac", 0.1 * rng.standard_normal(4000), sample_rate)


def test_tsv_protocols_give_manifests_with_codecs(tmp_path):
    build_tree(tmp_path, TSV_LINES)
    out = tmp_path / "manifests"
    prepare_asvspoof5(str(tmp_path), str(out))
    assert prepared_splits(str(out)) == ["train", "dev", "eval"]
    train = read_manifest(out / "train.csv")
    assert [(r["ID"], r["label"], r["attack"], r["attack_tag"]) for r in train] == [
        ("T_0000000000", "spoof", "A05", "AC3"),
        ("T_0000000001", "bonafide", "-", "-"),
    ]
    evaluation = read_manifest(out / "eval.csv")
    assert [r["codec"] for r in evaluation] == ["C08", "-", "C01"]
    assert [r["codec_q"] for r in evaluation] == ["3", "-", "1"]
    assert float(evaluation[0]["duration"]) == pytest.approx(0.25)


def test_challenge_metadata_in_a_protocol_folder_and_no_eval(tmp_path):
    build_tree(tmp_path, METADATA_LINES, protocol_folder="ASVspoof5_protocols")
    out = tmp_path / "manifests"
    prepare_asvspoof5(str(tmp_path), str(out))
    assert prepared_splits(str(out)) == ["train", "dev"]
    assert not (out / "eval.csv").exists()
    dev = read_manifest(out / "dev.csv")
    assert [(r["ID"], r["label"], r["attack"], r["gender"]) for r in dev] == [
        ("D_0000000190", "bonafide", "-", "M"),
        ("D_0000000169", "spoof", "A14", "F"),
    ]
    # A rerun with the same options does nothing (skip()); other options redo it.
    stamp = os.path.getmtime(out / "dev.csv")
    prepare_asvspoof5(str(tmp_path), str(out))
    assert os.path.getmtime(out / "dev.csv") == stamp
    prepare_asvspoof5(str(tmp_path), str(out), skip_missing=True)
    assert json.loads((out / "prepare_options.json").read_text())["skip_missing"] is True


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("D_0461 D_0000000191 M - - - - bonafide bonafide", "expected 10 columns"),
        ("D_0461 D_0000000191 M - - - - A01 bonafide -", "bona fide trial with attack 'A01'"),
        ("D_0461 D_0000000191 M - - - AC1 - spoof -", "spoof trial with attack '-'"),
        ("D_0461 D_0000000191 M X9 - - - bonafide bonafide -", "codec 'X9'"),
        ("D_0461 D_0000000191 M - - - AC1 A09 fake -", "key 'fake'"),
        ("D_0461 T_0000000191 M - - - AC1 A09 spoof -", "not a dev file"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    build_tree(tmp_path, TSV_LINES)
    with open(tmp_path / "ASVspoof5.dev.track_1.tsv", "a", encoding="utf-8") as fout:
        fout.write(bad_line + "\n")
    with pytest.raises(ProtocolError, match=f"ASVspoof5.dev.track_1.tsv:3: .*{message}"):
        prepare_asvspoof5(str(tmp_path), str(tmp_path / "manifests"))


def test_six_column_line_in_a_tsv_protocol_is_refused(tmp_path):
    build_tree(tmp_path, METADATA_LINES)
    (tmp_path / "ASVspoof5.train.metadata.txt").rename(tmp_path / "ASVspoof5.train.tsv")
    with pytest.raises(ProtocolError, match=r"ASVspoof5.train.tsv:1: expected 10 columns"):
        prepare_asvspoof5(str(tmp_path), str(tmp_path / "manifests"))


def test_missing_audio_fails_or_is_listed(tmp_path):
    build_tree(tmp_path, TSV_LINES)
    os.remove(tmp_path / "flac_D" / "D_0000000169.flac")
    with pytest.raises(AudioError, match=r"ASVspoof5.dev.track_1.tsv:2: audio file not found"):
        prepare_asvspoof5(str(tmp_path), str(tmp_path / "manifests"))
    out = tmp_path / "skipping"
    prepare_asvspoof5(str(tmp_path), str(out), skip_missing=True)
    assert (out / "dev_missing.txt").read_text() == "D_0000000169\n"
    assert [r["ID"] for r in read_manifest(out / "dev.csv")] == ["D_0000000190"]


def test_wrong_sample_rate_names_file_and_line(tmp_path):
    build_tree(tmp_path, TSV_LINES)
    sf.write(tmp_path / "flac_E_eval" / "E_0000000006.flac", np.zeros(800), 8000)
    with pytest.raises(AudioError, match=r"eval.track_1.tsv:2: .*E_0000000006.flac is sampled at 8000 Hz"):
        prepare_asvspoof5(str(tmp_path), str(tmp_path / "manifests"), skip_missing=True)


def test_missing_train_protocol_and_audio_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ASVspoof 5 train protocol"):
        prepare_asvspoof5(str(tmp_path), str(tmp_path / "manifests"))
    build_tree(tmp_path, TSV_LINES)
    os.rename(tmp_path / "flac_D", tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="audio folder not found: .*flac_D"):
        prepare_asvspoof5(str(tmp_path), str(tmp_path / "manifests"))


@pytest.mark.parametrize("form", ["tsv", "metadata"])
def test_synthetic_tree_builder_matches_the_prepare_step(tmp_path, form):
    counts = {"train": 2, "dev": 2, "eval": 2}
    make_synthetic_asvspoof5(tmp_path, counts, counts, seconds=(0.3, 0.4), protocol_form=form)
    out = tmp_path / "manifests"
    prepare_asvspoof5(str(tmp_path), str(out))
    for split in counts:
        assert len(read_manifest(out / f"{split}.csv")) == 4


def test_train_script_docstring_examples_and_challenge_file(tmp_path):
    import doctest

    from conftest import load_recipe_module

    from lobes.evaluation.scores import ScoreRecord

    train = load_recipe_module("ASVspoof5")
    result = doctest.testmod(train)
    assert result.attempted > 0 and result.failed == 0
    records = [ScoreRecord("E_0000000001", "A17", "spoof", -1.5), ScoreRecord("E_0000000002", "-", "bonafide", 2.0)]
    path = tmp_path / "eval_challenge.tsv"
    train.write_challenge_scores(str(path), records, scores=[0.25, 0.5])
    assert path.read_text() == "filename\tcm-score\nE_0000000001\t0.250000\nE_0000000002\t0.500000\n"
    with pytest.raises(ValueError, match="scored twice"):
        train.write_challenge_scores(str(path), records + records[:1])
    assert train.codec_grouping(["-", "-"]) == {}
    assert train.codec_grouping(["-", "C01"]) == {"by_codec": (["-", "C01"], False)}
