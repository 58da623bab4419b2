"""Eval-only prepare functions and the cross-dataset evaluation command."""

import json
import os
import sys

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "ASVspoof2019"))
from conftest import assert_calibrated, smoke_overrides  # noqa: E402
from crossdataset_prepare import (  # noqa: E402
    prepare_asvspoof2021,
    prepare_in_the_wild,
    read_asv21_scores,
)

from lobes.dataio.prepare import ProtocolError, read_manifest  # noqa: E402
from lobes.evaluation.scores import read_scores  # noqa: E402
from lobes.testing.synthetic import bonafide_signal, make_synthetic_la  # noqa: E402

LA21_KEY = [
    "LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval",
    "LA_0009 LA_E_9332882 alaw ita_tx bonafide bonafide notrim eval",
    "LA_0012 LA_E_9332883 ulaw loc_tx A13 spoof trim progress",
    "LA_0012 LA_E_9332884 none loc_tx bonafide bonafide notrim eval",
    "LA_0014 LA_E_9332885 gsm sin_tx A19 spoof notrim eval",
]
DF21_KEY = [
    "LA_0043 DF_E_2000011 nocodec asvspoof A14 spoof notrim eval traditional_vocoder - - - -",
    "LA_0043 DF_E_2000012 mp3m4a vcc2018 bonafide bonafide notrim eval - - - - -",
    "LA_0043 DF_E_2000013 ogg vcc2020 A09 spoof notrim progress neural_vocoder - - - -",
    "LA_0044 DF_E_2000014 nocodec asvspoof bonafide bonafide notrim eval - - - - -",
]
ASV21_KEY = [
    "LA_0009 LA_E_1 alaw ita_tx bonafide target notrim eval",
    "LA_0009 LA_E_2 alaw ita_tx bonafide nontarget notrim eval",
    "LA_0009 LA_E_3 alaw ita_tx A07 spoof notrim eval",
    "LA_0009 LA_E_4 alaw ita_tx bonafide target notrim progress",
]
ASV21_SCORES = ["LA_0009 LA_E_1 3.5", "LA_0009 LA_E_2 -2.0", "LA_0009 LA_E_3 1.0", "LA_0009 LA_E_4 9.0"]
ITW_META = (
    "file,speaker,label\n0.wav,Alec Guinness,spoof\n1.wav,Alec Guinness,bona-fide\n"
    "2.wav,Barack Obama,bona-fide\n3.wav,Barack Obama,spoof\n"
)


def write_audio(folder, names, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        sf.write(folder / name, bonafide_signal(rng, 0.7), 16000)


def build_asv21(root, track, key_lines, with_asv=False):
    keys = root / "keys" / track / "CM"
    keys.mkdir(parents=True)
    (keys / "trial_metadata.txt").write_text("\n".join(key_lines) + "\n")
    write_audio(root / f"ASVspoof2021_{track}_eval" / "flac", [f"{line.split()[1]}.flac" for line in key_lines])
    if with_asv:
        asv = root / "keys" / "LA" / "ASV"
        (asv / "ASVTorch_Kaldi").mkdir(parents=True)
        (asv / "trial_metadata.txt").write_text("\n".join(ASV21_KEY) + "\n")
        (asv / "ASVTorch_Kaldi" / "score.txt").write_text("\n".join(ASV21_SCORES) + "\n")
    return root


def build_itw(root):
    release = root / "release_in_the_wild"
    write_audio(release, [f"{i}.wav" for i in range(4)])
    (release / "meta.csv").write_text(ITW_META)
    return root


@pytest.mark.parametrize("track, key_lines, expected", [
    ("LA", LA21_KEY, ["LA_E_9332881", "LA_E_9332882", "LA_E_9332884", "LA_E_9332885"]),
    ("DF", DF21_KEY, ["DF_E_2000011", "DF_E_2000012", "DF_E_2000014"]),
])
def test_asvspoof2021_keeps_the_eval_subset(tmp_path, track, key_lines, expected):
    root = build_asv21(tmp_path / "data", track, key_lines)
    manifest = prepare_asvspoof2021(str(root), str(tmp_path / "out"), track)
    rows = read_manifest(manifest)
    assert [r["ID"] for r in rows] == expected
    assert {r["attack"] for r in rows if r["label"] == "bonafide"} == {"-"}


def test_asvspoof2021_key_with_wrong_columns_is_named(tmp_path):
    root = build_asv21(tmp_path / "data", "DF", DF21_KEY)
    key = root / "keys" / "DF" / "CM" / "trial_metadata.txt"
    key.write_text(key.read_text() + "LA_0044 DF_E_2000015 nocodec asvspoof A14 spoof notrim eval\n")
    with pytest.raises(ProtocolError, match=r"trial_metadata\.txt:5: expected 13 columns"):
        prepare_asvspoof2021(str(root), str(tmp_path / "out"), "DF")


def test_asv21_scores_follow_the_key_rows(tmp_path):
    root = build_asv21(tmp_path / "data", "LA", LA21_KEY, with_asv=True)
    asv = read_asv21_scores(str(root))
    assert asv["target"].tolist() == [3.5]  # the progress-subset target is left out
    assert asv["nontarget"].tolist() == [-2.0] and asv["spoof"].tolist() == [1.0]
    assert read_asv21_scores(str(tmp_path)) is None


def test_in_the_wild_manifest(tmp_path):
    root = build_itw(tmp_path / "data")
    rows = read_manifest(prepare_in_the_wild(str(root), str(tmp_path / "out")))
    assert [(r["ID"], r["label"], r["speaker"]) for r in rows] == [
        ("0", "spoof", "Alec_Guinness"), ("1", "bonafide", "Alec_Guinness"),
        ("2", "bonafide", "Barack_Obama"), ("3", "spoof", "Barack_Obama"),
    ]
    meta = root / "release_in_the_wild" / "meta.csv"
    meta.write_text(ITW_META + "4.wav,Barack Obama,fake\n")
    with pytest.raises(ProtocolError, match=r"meta\.csv:6"):
        prepare_in_the_wild(str(root), str(tmp_path / "out2"))


def test_cross_dataset_command_scores_every_set(tmp_path, tiny_ssl, run_recipe):
    counts = {"train": 4, "dev": 3, "eval": 3}
    make_synthetic_la(tmp_path / "la", counts, counts, seconds=(0.6, 0.9), seed=5)
    output = tmp_path / "run"
    run_recipe(
        "ASVspoof2019", "ffn.yaml", tmp_path,
        *smoke_overrides(tmp_path / "la", tiny_ssl, output, "--number_of_epochs=1"),
    )
    la21 = build_asv21(tmp_path / "la21", "LA", LA21_KEY, with_asv=True)
    df21 = build_asv21(tmp_path / "df21", "DF", DF21_KEY)
    itw = build_itw(tmp_path / "itw")
    run_recipe(
        "ASVspoof2019", str(output / "hyperparams.yaml"), tmp_path,
        f"--asv21_la_folder={la21}", f"--asv21_df_folder={df21}", f"--itw_folder={itw}",
        script="evaluate.py",
    )
    results = json.loads((output / "results.json").read_text())["test_sets"]
    assert set(results) == {"dev", "eval", "asv21_la", "asv21_df", "itw"}
    # Cross-dataset sets are calibrated on the training run's dev scores.
    for name in ("asv21_la", "asv21_df", "itw"):
        assert_calibrated({"test_sets": results}, output, name)
    assert [results[name]["n_trials"] for name in ("asv21_la", "asv21_df", "itw")] == [4, 3, 4]
    assert "min_tdcf" in results["asv21_la"] and "min_tdcf" not in results["asv21_df"]
    assert len(read_scores(output / "scores" / "itw.txt")) == 4
