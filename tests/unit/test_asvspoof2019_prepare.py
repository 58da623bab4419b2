"""ASVspoof 2019 LA prepare step against fixture trees with the real layout."""

import json
import os
import sys

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "ASVspoof2019"))
from asvspoof2019_prepare import prepare_asvspoof2019  # noqa: E402

from lobes.dataio.prepare import AudioError, ProtocolError, read_manifest  # noqa: E402

# Lines in the format of the official protocols (some taken from them).
PROTOCOL_LINES = {
    "train": [
        "LA_0079 LA_T_1138215 - - bonafide",
        "LA_0079 LA_T_1271820 - - bonafide",
        "LA_0079 LA_T_1004644 - A01 spoof",
        "LA_0081 LA_T_1028435 - A06 spoof",
    ],
    "dev": [
        "LA_0069 LA_D_1047731 - - bonafide",
        "LA_0069 LA_D_1034296 - A02 spoof",
        "LA_0071 LA_D_1105538 - A05 spoof",
    ],
    "eval": [
        "LA_0039 LA_E_2834763 - A11 spoof",
        "LA_0014 LA_E_8877452 - - bonafide",
        "LA_0039 LA_E_6828287 - A16 spoof",
        "LA_0002 LA_E_5085671 - A19 spoof",
    ],
}
SUFFIX = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}


def build_la_tree(root, lines=PROTOCOL_LINES, sample_rate=16000):
    """Writes ``root/LA`` with protocols and one short flac per protocol line."""
    la = root / "LA"
    protocols = la / "ASVspoof2019_LA_cm_protocols"
    protocols.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, split_lines in lines.items():
        audio = la / f"ASVspoof2019_LA_{split}" / "flac"
        audio.mkdir(parents=True)
        for line in split_lines:
            utt_id = line.split()[1]
            sf.write(audio / f"{utt_id}.flac", 0.1 * rng.standard_normal(4000), sample_rate)
        (protocols / f"ASVspoof2019.LA.cm.{SUFFIX[split]}.txt").write_text(
            "\n".join(split_lines) + "\n"
        )
    return la


def test_manifests_hold_every_trial(tmp_path):
    build_la_tree(tmp_path)
    out = tmp_path / "manifests"
    prepare_asvspoof2019(str(tmp_path), str(out))
    for split, lines in PROTOCOL_LINES.items():
        rows = read_manifest(out / f"{split}.csv")
        assert [r["ID"] for r in rows] == [line.split()[1] for line in lines]
        assert {r["label"] for r in rows} == {"bonafide", "spoof"}
        first = rows[0]
        speaker, utt_id, _, attack, key = lines[0].split()
        assert (first["speaker"], first["attack"], first["label"]) == (speaker, attack, key)
        assert float(first["duration"]) == pytest.approx(0.25)
        assert os.path.isfile(first["wav"])


def test_accepts_the_la_folder_itself(tmp_path):
    la = build_la_tree(tmp_path)
    prepare_asvspoof2019(str(la), str(tmp_path / "out"), splits=["dev"])
    assert len(read_manifest(tmp_path / "out" / "dev.csv")) == 3


def test_rerun_with_same_options_is_a_no_op(tmp_path):
    build_la_tree(tmp_path)
    out = tmp_path / "manifests"
    prepare_asvspoof2019(str(tmp_path), str(out))
    manifest = out / "train.csv"
    before = manifest.stat().st_mtime_ns
    os.remove(tmp_path / "LA" / "ASVspoof2019_LA_train" / "flac" / "LA_T_1138215.flac")
    prepare_asvspoof2019(str(tmp_path), str(out))  # would fail if it re-checked
    assert manifest.stat().st_mtime_ns == before
    with pytest.raises(AudioError):
        prepare_asvspoof2019(str(tmp_path), str(out), skip_missing=False, splits=["train"])


def test_malformed_line_names_file_and_line(tmp_path):
    lines = dict(PROTOCOL_LINES, dev=PROTOCOL_LINES["dev"] + ["LA_0069 LA_D_1 - A02"])
    build_la_tree(tmp_path, lines)
    with pytest.raises(ProtocolError, match=r"ASVspoof2019\.LA\.cm\.dev\.trl\.txt:4: expected 5 columns"):
        prepare_asvspoof2019(str(tmp_path), str(tmp_path / "out"))


@pytest.mark.parametrize(
    "bad_line, reason",
    [
        ("LA_0069 LA_D_1047799 - A02 fake", "neither 'bonafide' nor 'spoof'"),
        ("LA_0069 LA_D_1047799 - A02 bonafide", "bona fide trial with attack"),
        ("LA_0069 LA_D_1047799 - - spoof", "spoof trial without an attack"),
        ("LA_0069 LA_D_1047731 - - bonafide", "already listed on line 1"),
    ],
)
def test_inconsistent_lines_are_rejected(tmp_path, bad_line, reason):
    build_la_tree(tmp_path)
    protocol = tmp_path / "LA" / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.dev.trl.txt"
    protocol.write_text(protocol.read_text() + bad_line + "\n")
    with pytest.raises(ProtocolError, match=reason):
        prepare_asvspoof2019(str(tmp_path), str(tmp_path / "out"), splits=["dev"])


def test_missing_audio_fails_or_is_listed_and_skipped(tmp_path):
    build_la_tree(tmp_path)
    missing = tmp_path / "LA" / "ASVspoof2019_LA_eval" / "flac" / "LA_E_6828287.flac"
    os.remove(missing)
    with pytest.raises(AudioError, match=r"eval\.trl\.txt:3: audio file not found: .*LA_E_6828287\.flac"):
        prepare_asvspoof2019(str(tmp_path), str(tmp_path / "out"), splits=["eval"])
    out = tmp_path / "out2"
    prepare_asvspoof2019(str(tmp_path), str(out), splits=["eval"], skip_missing=True)
    assert [r["ID"] for r in read_manifest(out / "eval.csv")] == [
        "LA_E_2834763", "LA_E_8877452", "LA_E_5085671"
    ]
    assert (out / "eval_missing.txt").read_text() == "LA_E_6828287\n"
    assert json.loads((out / "prepare_options.json").read_text())["skip_missing"] is True


def test_wrong_sample_rate_is_rejected_even_when_skipping_missing(tmp_path):
    build_la_tree(tmp_path)
    bad = tmp_path / "LA" / "ASVspoof2019_LA_dev" / "flac" / "LA_D_1034296.flac"
    sf.write(bad, np.zeros(800), 8000)
    with pytest.raises(AudioError, match=r"LA_D_1034296\.flac is sampled at 8000 Hz"):
        prepare_asvspoof2019(str(tmp_path), str(tmp_path / "out"), splits=["dev"], skip_missing=True)


def test_unreadable_audio_is_rejected(tmp_path):
    build_la_tree(tmp_path)
    bad = tmp_path / "LA" / "ASVspoof2019_LA_dev" / "flac" / "LA_D_1105538.flac"
    bad.write_bytes(b"not a flac file")
    with pytest.raises(AudioError, match="unreadable audio file .*LA_D_1105538.flac"):
        prepare_asvspoof2019(str(tmp_path), str(tmp_path / "out"), splits=["dev"])


def test_missing_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ASVspoof 2019 LA data"):
        prepare_asvspoof2019(str(tmp_path / "nowhere"), str(tmp_path / "out"))
    build_la_tree(tmp_path, {"dev": PROTOCOL_LINES["dev"]})
    with pytest.raises(FileNotFoundError, match="ASVspoof2019_LA_train"):
        prepare_asvspoof2019(str(tmp_path), str(tmp_path / "out"))
