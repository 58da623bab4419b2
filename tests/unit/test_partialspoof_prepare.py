"""PartialSpoof prepare step against fixture trees with the real layout."""

import os
import shutil
import sys

import numpy as np
import pytest

RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "PartialSpoof")
sys.path.insert(0, RECIPE)
from partialspoof_prepare import SegmentLabelError, prepare_partialspoof  # noqa: E402
from synthetic_partialspoof import make_partialspoof_tree  # noqa: E402

from lobes.dataio.prepare import ProtocolError, read_manifest  # noqa: E402

COUNTS = {"train": (2, 3), "dev": (1, 2), "eval": (1, 2)}
STORED = ["seglab_20", "seglab_40", "seglab_80", "seglab_160", "seglab_320", "seglab_640"]


def build(root, **kwargs):
    return make_partialspoof_tree(root, COUNTS, seconds=(0.3, 1.2), seed=5, **kwargs)


def labels_file(root, split, resolution):
    return root / "database" / "segment_labels" / f"{split}_seglab_{resolution}.npy"


def rewrite_labels(path, change):
    labels = np.load(path, allow_pickle=True).item()
    change(labels)
    np.save(path, labels)


def test_manifests_hold_trials_and_every_resolution(tmp_path):
    tree = build(tmp_path)
    out = tmp_path / "manifests"
    found = prepare_partialspoof(str(tmp_path), str(out))
    assert found["dev"] == ["0.01", "0.02", "0.04", "0.08", "0.16", "0.32", "0.64"]
    for split, entries in tree.items():
        rows = read_manifest(out / f"{split}.csv")
        assert [r["ID"] for r in rows] == [line.split()[1] for line, _ in entries]
        assert [c for c in rows[0] if c.startswith("seglab_")] == STORED  # no 10 ms
        for row, (line, _) in zip(rows, entries):
            if row["label"] == "bonafide":
                assert set(row["seglab_20"]) == {"1"}
            else:
                # Partially spoofed: both classes inside one utterance.
                assert set(row["seglab_20"]) == {"0", "1"}
                assert row["attack"] == "CON"
            saved = np.load(labels_file(tmp_path, split, "0.04"), allow_pickle=True).item()
            assert row["seglab_40"] == "".join(saved[row["ID"]].tolist())
    durations = {float(r["duration"]) for r in read_manifest(out / "train.csv")}
    assert len(durations) == 5  # variable-length utterances


def test_wrong_polarity_is_rejected_naming_file_and_line(tmp_path):
    build(tmp_path, bonafide_symbol="0")
    with pytest.raises(SegmentLabelError) as err:
        prepare_partialspoof(str(tmp_path), str(tmp_path / "out"), splits=["dev"])
    message = str(err.value)
    assert str(labels_file(tmp_path, "dev", "0.01")) in message
    assert "PartialSpoof.LA.cm.dev.trl.txt:1" in message  # the bona fide line
    assert "bona fide symbol '1'" in message
    assert not (tmp_path / "out" / "dev.csv").exists()


def test_declared_polarity_is_normalised(tmp_path):
    official, inverted = tmp_path / "official", tmp_path / "inverted"
    build(official)
    build(inverted, bonafide_symbol="0")
    prepare_partialspoof(str(official), str(official / "out"), splits=["train"])
    prepare_partialspoof(str(inverted), str(inverted / "out"), splits=["train"], bonafide_symbol="0")
    rows_a = read_manifest(official / "out" / "train.csv")
    rows_b = read_manifest(inverted / "out" / "train.csv")
    assert [r["seglab_20"] for r in rows_a] == [r["seglab_20"] for r in rows_b]


def test_one_wrong_segment_in_one_bonafide_utterance_is_enough(tmp_path):
    build(tmp_path)
    path = labels_file(tmp_path, "eval", "0.32")

    def flip_last(labels):
        utt_id = next(k for k in labels if k.startswith("LA_"))
        labels[utt_id] = np.concatenate([labels[utt_id][:-1], ["0"]])

    rewrite_labels(path, flip_last)
    with pytest.raises(SegmentLabelError, match=str(path)):
        prepare_partialspoof(str(tmp_path), str(tmp_path / "out"), splits=["eval"])


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda labels: labels.pop(sorted(labels)[0]), "no segment labels for"),
        (lambda labels: labels.update({k: np.array(["2"]) for k in labels}), "symbols ['2']"),
    ],
)
def test_missing_or_malformed_labels_fail(tmp_path, change, reason):
    build(tmp_path)
    path = labels_file(tmp_path, "dev", "0.16")
    rewrite_labels(path, change)
    with pytest.raises(SegmentLabelError) as err:
        prepare_partialspoof(str(tmp_path), str(tmp_path / "out"), splits=["dev"])
    assert str(path) in str(err.value) and reason in str(err.value)


def test_label_file_that_is_not_a_dict_fails(tmp_path):
    build(tmp_path)
    path = labels_file(tmp_path, "dev", "0.02")
    np.save(path, np.array(["1", "0"]))
    with pytest.raises(SegmentLabelError, match="expected a dict"):
        prepare_partialspoof(str(tmp_path), str(tmp_path / "out"), splits=["dev"])


def test_malformed_protocol_line_names_file_and_line(tmp_path):
    build(tmp_path)
    protocol = (
        tmp_path / "database" / "protocols" / "PartialSpoof_LA_cm_protocols"
        / "PartialSpoof.LA.cm.dev.trl.txt"
    )
    lines = protocol.read_text().splitlines()
    lines[1] = lines[1].replace(" spoof", " fake")
    protocol.write_text("\n".join(lines) + "\n")
    with pytest.raises(ProtocolError, match=f"{protocol}:2"):
        prepare_partialspoof(str(tmp_path), str(tmp_path / "out"), splits=["dev"])


def test_without_segment_labels_only_utterance_columns(tmp_path):
    build(tmp_path)
    shutil.rmtree(tmp_path / "database" / "segment_labels")
    found = prepare_partialspoof(str(tmp_path / "database"), str(tmp_path / "out"), splits=["dev"])
    assert found == {"dev": []}
    row = read_manifest(tmp_path / "out" / "dev.csv")[0]
    assert not [c for c in row if c.startswith("seglab_")]


def test_rerun_is_a_no_op_until_labels_change(tmp_path):
    build(tmp_path)
    out = tmp_path / "out"
    prepare_partialspoof(str(tmp_path), str(out), splits=["dev"])
    manifest = out / "dev.csv"
    manifest.write_text(manifest.read_text() + "marker\n")
    prepare_partialspoof(str(tmp_path), str(out), splits=["dev"])
    assert manifest.read_text().endswith("marker\n")
    os.remove(labels_file(tmp_path, "dev", "0.64"))
    prepare_partialspoof(str(tmp_path), str(out), splits=["dev"])
    assert "seglab_640" not in manifest.read_text()
