"""CtrSVDD prepare step and headline metric against fixtures built here."""

import doctest
import importlib.util
import logging
import os
import sys

import numpy as np
import pytest
import soundfile as sf

RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "CtrSVDD")
sys.path.insert(0, RECIPE)
import ctrsvdd_prepare  # noqa: E402
from ctrsvdd_prepare import prepare_ctrsvdd  # noqa: E402

from lobes.dataio.prepare import AudioError, ProtocolError, read_manifest  # noqa: E402
from lobes.evaluation.metrics import compute_eer  # noqa: E402
from lobes.evaluation.scores import ScoreRecord  # noqa: E402


def load_train_module():
    # Every recipe has a train.py: load this one under its own module name.
    spec = importlib.util.spec_from_file_location("ctrsvdd_train", os.path.join(RECIPE, "train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ctrsvdd_train = load_train_module()

# Protocol lines in the release's 6-column form. Eval holds acesinger and A14
# rows, which the headline metric leaves out.
PROTOCOLS = {
    "train.txt": [
        "m4singer CtrSVDD_0110 CtrSVDD_0110_T_0000001 - - bonafide",
        "m4singer CtrSVDD_0110 CtrSVDD_0110_T_0000002 - - bonafide",
        "kising CtrSVDD_0002 CtrSVDD_0002_T_0000003 - - bonafide",
        "kising CtrSVDD_0002 CtrSVDD_0002_T_0000004 - - bonafide",
        "jvsmusic CtrSVDD_0097 CtrSVDD_0097_T_0000005 - A01 deepfake",
        "m4singer CtrSVDD_0110 CtrSVDD_0110_T_0000006 - A02 deepfake",
        "kising CtrSVDD_0002 CtrSVDD_0002_T_0000007 - A03 deepfake",
        "jvsmusic CtrSVDD_0097 CtrSVDD_0097_T_0000008 - A04 deepfake",
    ],
    "dev.txt": [
        "m4singer CtrSVDD_0110 CtrSVDD_0110_D_0015416 - - bonafide",
        "jvsmusic CtrSVDD_0097 CtrSVDD_0097_D_0010990 - - bonafide",
        "m4singer CtrSVDD_0110 CtrSVDD_0110_D_0015417 - - bonafide",
        "jvsmusic CtrSVDD_0097 CtrSVDD_0097_D_0010993 - A06 deepfake",
        "kising CtrSVDD_0002 CtrSVDD_0002_D_0010994 - A05 deepfake",
    ],
    "test.txt": [
        "m4singer CtrSVDD_0110 CtrSVDD_0110_E_0000001 - - bonafide",
        "m4singer CtrSVDD_0110 CtrSVDD_0110_E_0000002 - - bonafide",
        "kising CtrSVDD_0002 CtrSVDD_0002_E_0000003 - - bonafide",
        "acesinger CtrSVDD_0150 CtrSVDD_0150_E_0000004 - - bonafide",
        "kising CtrSVDD_0002 CtrSVDD_0002_E_0000005 - A09 deepfake",
        "jvsmusic CtrSVDD_0097 CtrSVDD_0097_E_0000006 - A10 deepfake",
        "m4singer CtrSVDD_0110 CtrSVDD_0110_E_0000007 - A14 deepfake",
        "acesinger CtrSVDD_0150 CtrSVDD_0150_E_0000008 - A11 deepfake",
        "kising CtrSVDD_0002 CtrSVDD_0002_E_0000009 - A12 deepfake",
    ],
}
# Licence-restricted bona fide audio the public zips lack.
MISSING = {
    "CtrSVDD_0002_T_0000003", "CtrSVDD_0002_T_0000004",
    "CtrSVDD_0097_D_0010990",
    "CtrSVDD_0002_E_0000003",
}
AUDIO_FOLDERS = {"train.txt": "train_set", "dev.txt": "dev_set", "test.txt": "test_set"}


def build_ctrsvdd_tree(root, protocols=PROTOCOLS, missing=MISSING, seconds=0.5):
    """Protocols plus one flac per protocol line, except the ``missing`` ids."""
    rng = np.random.default_rng(0)
    for name, lines in protocols.items():
        folder = root / AUDIO_FOLDERS[name]
        folder.mkdir(parents=True, exist_ok=True)
        for line in lines:
            utt_id = line.split()[2]
            if utt_id not in missing:
                sf.write(folder / f"{utt_id}.flac", 0.1 * rng.standard_normal(int(seconds * 16000)), 16000)
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def kept_ids(name):
    return [line.split()[2] for line in PROTOCOLS[name] if line.split()[2] not in MISSING]


EXPECTED_SUMMARY = """\
CtrSVDD: 4 of 22 protocol entries have no audio and were skipped (listed in {listing})
  train: kising 2 of 3 (bona fide 2, spoof 0)
  dev: jvsmusic 1 of 2 (bona fide 1, spoof 0)
  eval: kising 1 of 3 (bona fide 1, spoof 0)"""


def test_missing_audio_is_skipped_and_summarised_once(tmp_path, caplog):
    build_ctrsvdd_tree(tmp_path)
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="ctrsvdd_prepare"):
        missing = prepare_ctrsvdd(str(tmp_path), str(out))
    assert missing == {"train": {"kising": 2}, "dev": {"jvsmusic": 1}, "eval": {"kising": 1}}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    listing = out / "missing_audio.txt"
    assert warnings == [EXPECTED_SUMMARY.format(listing=listing)]
    assert sorted(listing.read_text().splitlines()) == sorted([
        "train kising CtrSVDD_0002_T_0000003", "train kising CtrSVDD_0002_T_0000004",
        "dev jvsmusic CtrSVDD_0097_D_0010990", "eval kising CtrSVDD_0002_E_0000003",
    ])
    for split, name in (("train", "train.txt"), ("dev", "dev.txt"), ("eval", "test.txt")):
        assert [r["ID"] for r in read_manifest(out / f"{split}.csv")] == kept_ids(name)


def test_manifest_columns(tmp_path):
    build_ctrsvdd_tree(tmp_path)
    prepare_ctrsvdd(str(tmp_path), str(tmp_path / "out"), splits=["eval"])
    rows = {r["ID"]: r for r in read_manifest(tmp_path / "out" / "eval.csv")}
    row = rows["CtrSVDD_0150_E_0000008"]
    assert (row["source"], row["speaker"], row["attack"], row["label"]) == (
        "acesinger", "CtrSVDD_0150", "A11", "spoof"
    )
    assert rows["CtrSVDD_0110_E_0000001"]["label"] == "bonafide"
    assert float(row["duration"]) == pytest.approx(0.5)
    assert row["wav"] == str(tmp_path / "test_set" / "CtrSVDD_0150_E_0000008.flac")


def test_nothing_missing_logs_no_warning(tmp_path, caplog):
    build_ctrsvdd_tree(tmp_path, missing=set())
    with caplog.at_level(logging.INFO, logger="ctrsvdd_prepare"):
        missing = prepare_ctrsvdd(str(tmp_path), str(tmp_path / "out"))
    assert missing == {"train": {}, "dev": {}, "eval": {}}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert (tmp_path / "out" / "missing_audio.txt").read_text() == ""


def test_empty_class_fails_after_the_summary(tmp_path, caplog):
    # Every dev bona fide file missing: the split cannot be scored.
    build_ctrsvdd_tree(tmp_path, missing=MISSING | {"CtrSVDD_0110_D_0015416", "CtrSVDD_0110_D_0015417"})
    with caplog.at_level(logging.WARNING, logger="ctrsvdd_prepare"):
        with pytest.raises(ValueError, match=r"CtrSVDD dev: no bonafide trial has audio \(3 listed"):
            prepare_ctrsvdd(str(tmp_path), str(tmp_path / "out"))
    assert "dev: jvsmusic 1 of 2 (bona fide 1, spoof 0), m4singer 2 of 2 (bona fide 2, spoof 0)" in caplog.text
    assert not (tmp_path / "out" / "dev.csv").exists()


def test_empty_split_fails(tmp_path):
    build_ctrsvdd_tree(tmp_path, missing={line.split()[2] for line in PROTOCOLS["test.txt"]})
    with pytest.raises(ValueError, match=r"CtrSVDD eval: no bonafide trial has audio \(4 listed"):
        prepare_ctrsvdd(str(tmp_path), str(tmp_path / "out"))


def test_strict_mode_fails_on_missing_audio(tmp_path):
    build_ctrsvdd_tree(tmp_path)
    with pytest.raises(AudioError, match=r"CtrSVDD_0002_T_0000003\.flac"):
        prepare_ctrsvdd(str(tmp_path), str(tmp_path / "out"), skip_missing=False)


@pytest.mark.parametrize(
    "bad_line, reason",
    [
        ("kising CtrSVDD_0002 CtrSVDD_0002_D_0010999 - A05 spoof", "neither 'bonafide' nor 'deepfake'"),
        ("CtrSVDD_0002 CtrSVDD_0002_D_0010999 - A05 deepfake", "expected 6 columns"),
        ("kising CtrSVDD_0002 CtrSVDD_0002_D_0010999 - - deepfake", "spoof trial without an attack"),
        ("kising CtrSVDD_0002 CtrSVDD_0110_D_0015416 - - bonafide", "already listed on line 1"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, bad_line, reason):
    build_ctrsvdd_tree(tmp_path)
    (tmp_path / "dev.txt").write_text("\n".join(PROTOCOLS["dev.txt"] + [bad_line]) + "\n")
    with pytest.raises(ProtocolError, match=rf"dev\.txt:6: .*{reason}"):
        prepare_ctrsvdd(str(tmp_path), str(tmp_path / "out"))


def test_eval_key_can_live_elsewhere(tmp_path):
    build_ctrsvdd_tree(tmp_path)
    key = tmp_path / "keys" / "eval_key.txt"
    key.parent.mkdir()
    os.replace(tmp_path / "test.txt", key)
    with pytest.raises(FileNotFoundError, match=r"protocol file not found: .*test\.txt"):
        prepare_ctrsvdd(str(tmp_path), str(tmp_path / "out"), splits=["eval"])
    prepare_ctrsvdd(str(tmp_path), str(tmp_path / "out"), splits=["eval"], eval_key=str(key))
    assert [r["ID"] for r in read_manifest(tmp_path / "out" / "eval.csv")] == kept_ids("test.txt")


def test_rerun_with_same_options_is_a_no_op(tmp_path):
    build_ctrsvdd_tree(tmp_path)
    out = tmp_path / "out"
    prepare_ctrsvdd(str(tmp_path), str(out))
    before = (out / "train.csv").stat().st_mtime_ns
    assert prepare_ctrsvdd(str(tmp_path), str(out)) is None
    assert (out / "train.csv").stat().st_mtime_ns == before


# Headline metric: hand-computed. Kept trials (no A14, no acesinger):
#   bona fide 0.9, 0.8, 0.4; spoof 0.2, 0.5, 0.3, 0.1.
# Thresholds through the sorted scores give FRR/FAR 0/1, 0/.75, 0/.5, 0/.25
# (at 0.4), 1/3 /.25 (at 0.5), 1/3 /0 (at 0.8): closest at 0.5, so
# EER = (1/3 + 1/4) / 2 = 7/24 = 29.1667 %.
HAND_RECORDS = [
    # utt_id, source, attack, key, score
    ("e01", "m4singer", "-", "bonafide", 0.9),
    ("e02", "kising", "-", "bonafide", 0.8),
    ("e03", "jvsmusic", "-", "bonafide", 0.4),
    ("e04", "kising", "A09", "spoof", 0.2),
    ("e05", "jvsmusic", "A10", "spoof", 0.5),
    ("e06", "m4singer", "A12", "spoof", 0.3),
    ("e07", "kising", "A13", "spoof", 0.1),
    # left out of the headline metric:
    ("e08", "m4singer", "A14", "spoof", 0.99),
    ("e09", "acesinger", "-", "bonafide", 0.05),
    ("e10", "acesinger", "A11", "spoof", 0.95),
]


def hand_records():
    records = [ScoreRecord(u, attack, key, score) for u, _, attack, key, score in HAND_RECORDS]
    sources = {u: source for u, source, *_ in HAND_RECORDS}
    return records, sources


def test_headline_eer_matches_the_hand_value():
    records, sources = hand_records()
    eer, n_kept = ctrsvdd_train.challenge_eer(records, sources)
    assert n_kept == 7
    assert 100 * eer == pytest.approx(100 * 7 / 24)  # 29.1667 %
    # Each exclusion matters: keeping either group changes the value.
    for dropped_rule in ({"e08"}, {"e09", "e10"}):
        kept = [r for r in records if r.utt_id not in {"e08", "e09", "e10"} - dropped_rule]
        bona = [r.score for r in kept if r.key == "bonafide"]
        spoof = [r.score for r in kept if r.key == "spoof"]
        assert compute_eer(bona, spoof)[0] != pytest.approx(7 / 24)


def test_eer_by_source_and_challenge_file(tmp_path):
    records, sources = hand_records()
    by_source = ctrsvdd_train.eer_by_source(records, sources)
    assert list(by_source) == ["acesinger", "jvsmusic", "kising", "m4singer"]
    # kising spoofs (0.2, 0.1) sit below every bona fide but acesinger's 0.05.
    bona = [score for _, _, _, key, score in HAND_RECORDS if key == "bonafide"]
    assert by_source["kising"] == pytest.approx(100 * compute_eer(bona, [0.2, 0.1])[0])
    path = tmp_path / "eval_challenge.txt"
    ctrsvdd_train.write_challenge_scores(str(path), records)
    lines = path.read_text().splitlines()
    assert lines[0] == "e01 0.900000" and len(lines) == len(records)
    with pytest.raises(ValueError, match="scored twice"):
        ctrsvdd_train.write_challenge_scores(str(path), records + records[:1])


def test_docstring_examples():
    # The recipes folder is outside pytest's doctest paths: run them here.
    for module in (ctrsvdd_prepare, ctrsvdd_train):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0
