"""HABLA prepare step against fixture trees in both published forms.

The trees are built here, at test time: ten speakers from the five countries,
bona fide speech, TTS and TTS-VC spoofs of one target speaker, and CycleGAN,
StarGAN and Diff conversions between two speakers.
"""

import json
import os
import sys

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "HABLA"))
from habla_prepare import (  # noqa: E402
    assign_speakers,
    format_stats,
    method_family,
    parse_habla_name,
    prepare_habla,
)

from lobes.dataio.prepare import AudioError, ProtocolError, read_manifest  # noqa: E402

COUNTRIES = {"ar": "Argentina", "cl": "Chile", "co": "Colombia", "pe": "Peru", "ve": "Venezuela"}
SPEAKERS = [
    "arf_00295", "arm_00113", "clf_00410", "clm_00227", "cof_00512",
    "com_00098", "pef_00301", "pem_00077", "vef_00420", "vem_00160",
]
# Conversions pair speaker i (source) with speaker i + offset (target).
CONVERSIONS = {"CycleGAN": 1, "StarGAN": 3, "Diff": 5}
RATIOS = [0.6, 0.2, 0.2]


def fixture_entries():
    """Every file of the fixture: dicts with utt, key, method, target, speakers, folder."""
    entries = []
    for i, speaker in enumerate(SPEAKERS):
        country = COUNTRIES[speaker[:2]]
        for k in range(2):
            entries.append(dict(
                utt=f"{speaker}_{1000 * i + k:010d}", key="bonafide", method="-",
                target=speaker, speakers={speaker}, folder=f"Real/{country}/{speaker}",
            ))
        entries.append(dict(
            utt=f"TTS-{speaker}_{i:04d}", key="spoof", method="TTS",
            target=speaker, speakers={speaker}, folder=f"TTS/{speaker}",
        ))
        if i % 2 == 0:
            entries.append(dict(
                utt=f"TTS-VC-Diff-{speaker}_{i:04d}", key="spoof", method="TTS-VC-Diff",
                target=speaker, speakers={speaker}, folder=f"TTS-VC/{speaker}",
            ))
    for method, offset in CONVERSIONS.items():
        for i, source in enumerate(SPEAKERS):
            target = SPEAKERS[(i + offset) % len(SPEAKERS)]
            entries.append(dict(
                utt=f"{method}-{source}_{1000 * i:010d}-{target}", key="spoof", method=method,
                target=target, speakers={source, target}, folder=f"{method}/{target}",
            ))
    return entries


def protocol_line(entry):
    return f"{entry['target']} {entry['utt']} - {entry['method']} {entry['key']}"


def write_wav(path, seed, sample_rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.random.default_rng(seed).standard_normal(4000), sample_rate)


def build_full_release(root, protocol=True, entries=None, reverse=False):
    """``root/FinalDataset_16khz`` with folders per method and a protocol."""
    entries = fixture_entries() if entries is None else entries
    dataset = root / "FinalDataset_16khz"
    order = list(reversed(entries)) if reverse else entries
    for seed, entry in enumerate(order):
        write_wav(dataset / entry["folder"] / f"{entry['utt']}.wav", seed)
    if protocol:
        (dataset / "protocol.txt").write_text("\n".join(map(protocol_line, entries)) + "\n")
    return dataset


def build_presplit(root):
    """``root/HABLA_dataset``: speakers 0-7 in train_dev, the rest in eval, lists
    splitting train_dev by file (so train and val share speakers)."""
    dataset = root / "HABLA_dataset"
    lists = {"train": [], "val": [], "test": []}
    for seed, entry in enumerate(fixture_entries()):
        in_eval = entry["target"] in SPEAKERS[8:]
        write_wav(dataset / ("eval" if in_eval else "train_dev") / f"{entry['utt']}.wav", seed)
        lists["test" if in_eval else ("val" if seed % 4 == 0 else "train")].append(entry["utt"])
    (dataset / "scp").mkdir()
    for name, ids in lists.items():
        (dataset / "scp" / f"{name}.lst").write_text("\n".join(ids) + "\n")
    return dataset, lists


def manifests(folder):
    return {split: read_manifest(folder / f"{split}.csv") for split in ("train", "dev", "test")}


def speakers_by_split(rows_by_split):
    return {
        split: {s for row in rows for s in row["speakers"].split("+")}
        for split, rows in rows_by_split.items()
    }


def assert_speaker_disjoint(rows_by_split):
    owners = speakers_by_split(rows_by_split)
    for a in owners:
        for b in owners:
            if a < b:
                assert not owners[a] & owners[b], f"{a} and {b} share {owners[a] & owners[b]}"


@pytest.fixture(scope="module")
def full_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("habla_full")
    build_full_release(root)
    return root


@pytest.fixture(scope="module")
def full_prepared(full_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("habla_full_out")
    stats = prepare_habla(str(full_tree), str(out), split_ratios=RATIOS, split_seed=0)
    return out, stats


@pytest.mark.parametrize(
    "stem, label, method, speakers",
    [
        ("vem_00160_0000009000", "bonafide", "-", ("vem_00160",)),
        ("CycleGAN-arf_00295_0000000000-arm_00113", "spoof", "CycleGAN", ("arf_00295", "arm_00113")),
        ("TTS-VC-Diff-pef_00301_0006", "spoof", "TTS-VC-Diff", ("pef_00301",)),
        ("Diff_cof_00512", "spoof", "Diff", ("cof_00512",)),
        ("StarGAN-x", "spoof", "StarGAN-x", ()),
    ],
)
def test_names_give_label_method_and_speakers(stem, label, method, speakers):
    info = parse_habla_name(stem)
    assert (info.label, info.method, info.speakers) == (label, method, speakers)


def test_method_families():
    methods = ("TTS-VC-Diff", "TTS", "TTS-VC", "Diff", "DiffX", "TTS-StarGAN", "TTS-CycleGAN_2")
    assert [method_family(m) for m in methods] == [
        "TTS-VC", "TTS", "TTS-VC", "Diff", "DiffX", "TTS-VC", "TTS-VC"
    ]


def test_speaker_split_is_disjoint_and_keeps_every_valid_trial(full_prepared):
    out, stats = full_prepared
    rows = manifests(out)
    assert_speaker_disjoint(rows)
    entries = {e["utt"]: e for e in fixture_entries()}
    kept = [row["ID"] for split_rows in rows.values() for row in split_rows]
    dropped = (out / "dropped_cross_split.txt").read_text().split()
    assert len(kept) == len(set(kept))
    assert sorted(kept + dropped) == sorted(entries)
    for split_rows in rows.values():
        for row in split_rows:
            entry = entries[row["ID"]]
            assert (row["label"], row["attack"], row["speaker"]) == (
                entry["key"], entry["method"], entry["target"]
            )
            assert set(row["speakers"].split("+")) == entry["speakers"]
            assert os.path.isfile(row["wav"]) and float(row["duration"]) == pytest.approx(0.25)
    # Only conversions between speakers of two splits are dropped.
    owner = {s: split for split, speakers in speakers_by_split(rows).items() for s in speakers}
    assert dropped, "the fixture should hold cross-split conversions"
    for utt in dropped:
        assert len({owner.get(s) for s in entries[utt]["speakers"]}) == 2
    assert stats["dropped_cross_split"] == len(dropped)
    assert stats["speakers_in_several_splits"] == []


def test_stats_count_splits_classes_methods_and_speakers(full_prepared):
    out, stats = full_prepared
    assert json.loads((out / "split_stats.json").read_text())["splits"] == stats["splits"]
    for split, split_rows in manifests(out).items():
        s = stats["splits"][split]
        assert s["trials"] == len(split_rows) == s["bonafide"] + s["spoof"]
        assert s["bonafide"] == sum(r["label"] == "bonafide" for r in split_rows) > 0
        assert sum(s["by_method"].values()) == s["trials"]
        assert s["speakers"] == len(speakers_by_split({split: split_rows})[split])
    assert sum(s["speakers"] for s in stats["splits"].values()) == len(SPEAKERS)
    table = format_stats(stats)
    assert table.splitlines()[0].split() == [
        "split", "trials", "bonafide", "spoof", "speakers",
        "CycleGAN", "Diff", "StarGAN", "TTS", "TTS-VC-Diff",
    ]


def test_split_shares_follow_the_ratios(full_prepared):
    _, stats = full_prepared
    total = sum(s["trials"] for s in stats["splits"].values()) + stats["dropped_cross_split"]
    train = stats["splits"]["train"]["trials"] + stats["dropped_cross_split"]
    assert stats["splits"]["train"]["trials"] > stats["splits"]["dev"]["trials"]
    assert 0.4 < train / total < 0.8


def test_rerun_is_deterministic_whatever_the_file_order(full_tree, full_prepared, tmp_path):
    out, _ = full_prepared
    other = tmp_path / "other"
    build_full_release(other, reverse=True)  # different creation order on disk
    prepare_habla(str(other), str(tmp_path / "out"), split_ratios=RATIOS, split_seed=0)
    first, second = manifests(out), manifests(tmp_path / "out")
    for split in first:
        assert [r["ID"] for r in first[split]] == [r["ID"] for r in second[split]]
    again = tmp_path / "again"
    prepare_habla(str(full_tree), str(again), split_ratios=RATIOS, split_seed=0)
    for split in first:
        assert (again / f"{split}.csv").read_text() == (out / f"{split}.csv").read_text()


def test_rerun_with_same_options_is_a_no_op(tmp_path):
    build_full_release(tmp_path)
    out = tmp_path / "out"
    stats = prepare_habla(str(tmp_path), str(out), split_ratios=RATIOS)
    before = (out / "train.csv").stat().st_mtime_ns
    assert prepare_habla(str(tmp_path), str(out), split_ratios=RATIOS) == stats
    assert (out / "train.csv").stat().st_mtime_ns == before
    prepare_habla(str(tmp_path), str(out), split_ratios=RATIOS, split_seed=7)
    assert (out / "train.csv").stat().st_mtime_ns != before


def test_other_seeds_give_other_disjoint_splits(full_tree, tmp_path):
    assignments = set()
    for seed in range(4):
        out = tmp_path / f"seed{seed}"
        prepare_habla(str(full_tree), str(out), split_ratios=RATIOS, split_seed=seed)
        rows = manifests(out)
        assert_speaker_disjoint(rows)
        assignments.add(tuple(tuple(sorted(s)) for s in speakers_by_split(rows).values()))
    assert len(assignments) > 1


def test_assignment_ignores_input_order_and_covers_every_speaker():
    weights = {f"arf_{i:05d}": 1 + i % 4 for i in range(40)}
    reordered = dict(reversed(list(weights.items())))
    split = assign_speakers(weights, [0.8, 0.1, 0.1], seed=3)
    assert split == assign_speakers(reordered, [0.8, 0.1, 0.1], seed=3)
    assert set(split) == set(weights)
    share = {name: sum(w for s, w in weights.items() if split[s] == name) / sum(weights.values())
             for name in ("train", "dev", "test")}
    assert share["train"] == pytest.approx(0.8, abs=0.06)
    assert share["dev"] == pytest.approx(0.1, abs=0.06)


def test_labels_from_folders_and_names_match_the_protocol(full_prepared, tmp_path):
    out, _ = full_prepared
    build_full_release(tmp_path, protocol=False)
    prepare_habla(str(tmp_path / "FinalDataset_16khz"), str(tmp_path / "out"), split_ratios=RATIOS)
    with_protocol, from_names = manifests(out), manifests(tmp_path / "out")
    fields = ("ID", "label", "attack", "speaker", "speakers")
    for split in with_protocol:
        assert [[r[f] for f in fields] for r in from_names[split]] == [
            [r[f] for f in fields] for r in with_protocol[split]
        ]


def test_presplit_form_speaker_mode_pools_both_folders(tmp_path):
    build_presplit(tmp_path)
    stats = prepare_habla(str(tmp_path), str(tmp_path / "out"), split_ratios=RATIOS)
    rows = manifests(tmp_path / "out")
    assert_speaker_disjoint(rows)
    kept = sum(len(r) for r in rows.values())
    assert kept + stats["dropped_cross_split"] == len(fixture_entries())
    assert stats["layout"] == "presplit"


def test_presplit_form_given_lists(tmp_path):
    _, lists = build_presplit(tmp_path)
    stats = prepare_habla(str(tmp_path), str(tmp_path / "out"), split_mode="given")
    rows = manifests(tmp_path / "out")
    for split, name in (("train", "train"), ("dev", "val"), ("test", "test")):
        assert sorted(r["ID"] for r in rows[split]) == sorted(lists[name])
    assert stats["dropped_cross_split"] == 0
    # The published lists share speakers; the stats say so.
    assert stats["speakers_in_several_splits"]


def test_given_lists_need_the_presplit_form(full_tree, tmp_path):
    with pytest.raises(FileNotFoundError, match="scp/ lists"):
        prepare_habla(str(full_tree), str(tmp_path / "out"), split_mode="given")


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no HABLA data in"):
        prepare_habla(str(tmp_path / "nowhere"), str(tmp_path / "out"))


def edit_protocol(dataset, replace=None, append=None):
    path = dataset / "protocol.txt"
    lines = path.read_text().splitlines()
    for index, line in (replace or {}).items():
        lines[index] = line
    path.write_text("\n".join(lines + (append or [])) + "\n")
    return len(lines)


def test_malformed_protocol_line_names_file_and_line(tmp_path):
    dataset = build_full_release(tmp_path)
    edit_protocol(dataset, replace={4: "arf_00295 TTS-arf_00295_0000 - TTS"})
    with pytest.raises(ProtocolError, match=r"protocol\.txt:5: expected 5 columns"):
        prepare_habla(str(tmp_path), str(tmp_path / "out"))


def test_protocol_label_contradicting_the_folder_is_rejected(tmp_path):
    dataset = build_full_release(tmp_path)
    edit_protocol(dataset, replace={0: "arf_00295 arf_00295_0000000000 - TTS spoof"})
    with pytest.raises(ProtocolError,
                       match=r"protocol\.txt:1: labelled spoof but .* is in Real/, which holds bonafide files"):
        prepare_habla(str(tmp_path), str(tmp_path / "out"))


def test_protocol_entry_without_audio_fails_or_is_skipped(tmp_path):
    dataset = build_full_release(tmp_path)
    n_lines = edit_protocol(dataset, append=["clm_00227 TTS-clm_00227_9999 - TTS spoof"])
    message = rf"protocol\.txt:{n_lines + 1}: no audio file TTS-clm_00227_9999\.wav"
    with pytest.raises(AudioError, match=message):
        prepare_habla(str(tmp_path), str(tmp_path / "out"), split_ratios=RATIOS)
    stats = prepare_habla(str(tmp_path), str(tmp_path / "out"), split_ratios=RATIOS, skip_missing=True)
    assert stats["missing_audio"] == 1
    assert (tmp_path / "out" / "missing_audio.txt").read_text() == "TTS-clm_00227_9999\n"


@pytest.mark.parametrize(
    "folder, name, message",
    [
        ("Real/Chile/clm_00227", "TTS-clm_00227_0042", "is in Real/ but its name is not a bona fide"),
        ("TTS/x", "TTS-0042", r"TTS-0042\.wav: cannot read the speaker ids"),
        ("", "clm_00227_0000000042", r"clm_00227_0000000042\.wav is not inside Real/"),
    ],
)
def test_files_that_contradict_their_folder_are_named(tmp_path, folder, name, message):
    dataset = build_full_release(tmp_path, protocol=False)
    write_wav(dataset / folder / f"{name}.wav", 0)
    with pytest.raises(ValueError, match=message):
        prepare_habla(str(tmp_path), str(tmp_path / "out"), split_ratios=RATIOS)


def test_two_files_with_one_id_are_rejected(tmp_path):
    dataset = build_full_release(tmp_path)
    write_wav(dataset / "TTS" / "elsewhere" / "TTS-arf_00295_0000.wav", 0)
    with pytest.raises(AudioError, match=r"two audio files share the id 'TTS-arf_00295_0000'"):
        prepare_habla(str(tmp_path), str(tmp_path / "out"))


@pytest.mark.parametrize(
    "edit, error, message",
    [
        (lambda ids: ids + [ids[0]], ProtocolError, r"train\.lst:(\d+): .* already listed on line 1"),
        (lambda ids: ids + ["arf_00295_0000099999"], AudioError,
         r"train\.lst:\d+: arf_00295_0000099999 has no audio"),
    ],
)
def test_bad_list_entries_name_file_and_line(tmp_path, edit, error, message):
    dataset, lists = build_presplit(tmp_path)
    (dataset / "scp" / "train.lst").write_text("\n".join(edit(lists["train"])) + "\n")
    with pytest.raises(error, match=message):
        prepare_habla(str(tmp_path), str(tmp_path / "out"), split_mode="given")


def test_id_in_two_lists_is_rejected(tmp_path):
    dataset, lists = build_presplit(tmp_path)
    (dataset / "scp" / "test.lst").write_text("\n".join(lists["test"] + [lists["val"][0]]) + "\n")
    with pytest.raises(ProtocolError, match=r"test\.lst:\d+: .* is also listed in .*val\.lst:1"):
        prepare_habla(str(tmp_path), str(tmp_path / "out"), split_mode="given")


def test_wrong_sample_rate_is_rejected(tmp_path):
    dataset = build_full_release(tmp_path)
    write_wav(dataset / "TTS" / "clm_00227" / "TTS-clm_00227_0003.wav", 0, sample_rate=8000)
    with pytest.raises(AudioError, match=r"TTS-clm_00227_0003\.wav is sampled at 8000 Hz"):
        prepare_habla(str(tmp_path), str(tmp_path / "out"), split_ratios=RATIOS)


@pytest.mark.parametrize(
    "ratios, message",
    [([0.8, 0.3, 0.1], "summing to 1"), ([1.0, 0.0, 0.0], "split 'dev' holds 0 trials")],
)
def test_unusable_ratios_are_rejected(full_tree, tmp_path, ratios, message):
    with pytest.raises(ValueError, match=message):
        prepare_habla(str(full_tree), str(tmp_path / "out"), split_ratios=ratios)


def test_target_policy_keeps_conversions_with_their_target_voice(full_tree, full_prepared, tmp_path):
    out, strict = full_prepared
    stats = prepare_habla(
        str(full_tree), str(tmp_path / "out"), split_ratios=RATIOS, cross_split_spoofs="target"
    )
    rows = manifests(tmp_path / "out")
    assert stats["dropped_cross_split"] == 0
    assert sum(len(r) for r in rows.values()) == len(fixture_entries())
    # Voices (the manifest's speaker column) stay disjoint; sources cross
    # splits and the stats report them.
    voices = {split: {r["speaker"] for r in split_rows} for split, split_rows in rows.items()}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not voices[a] & voices[b]
    assert stats["speakers_in_several_splits"]
    assert strict["speakers_in_several_splits"] == []
    with pytest.raises(ValueError, match="cross_split_spoofs must be one of"):
        prepare_habla(str(full_tree), str(tmp_path / "x"), cross_split_spoofs="keep")


# Layout variants seen in copies of HABLA: each is accepted, labelled by its
# folder, and reported. (folder, file stem, protocol line or None, expected
# manifest row (label, attack, family, speaker), expected variants)
ISSUE_STEM = "TTS-StarGAN-pef_02790_5512761628_TTS-arm_01523_0004"
VARIANT_CASES = {
    "method subfolders, with protocol": (
        "TTS-VC/TTS-StarGAN/Peru-Argentina", ISSUE_STEM,
        f"pef_02790 {ISSUE_STEM} - TTS-StarGAN spoof",
        ("spoof", "TTS-StarGAN", "TTS-VC", "pef_02790"), ["method_not_folder", "method_subfolder"],
    ),
    "method subfolders, names only": (
        "TTS-VC/TTS-StarGAN/Peru-Argentina", ISSUE_STEM, None,
        ("spoof", "TTS-StarGAN", "TTS-VC", "pef_02790"), ["method_not_folder", "method_subfolder"],
    ),
    "method not named after its folder": (
        "CycleGAN/clm_00227", "StarGAN-arf_00295_0000000001-clm_00227", None,
        ("spoof", "StarGAN", "CycleGAN", "clm_00227"), ["method_not_folder"],
    ),
    "spoof without a method prefix": (
        "TTS/arf_00295", "arf_00295_0000000777", None,
        ("spoof", "TTS", "TTS", "arf_00295"), ["unprefixed_spoof"],
    ),
    "unprefixed spoof in a method subfolder": (
        "TTS-VC/TTS-Diff", "pef_00301_0000000778", None,
        ("spoof", "TTS-Diff", "TTS-VC", "pef_00301"), ["method_subfolder", "unprefixed_spoof"],
    ),
    "unknown spoof family folder": (
        "NewVC", "NewVC-arf_00295_0000000002-clm_00227", None,
        ("spoof", "NewVC", "NewVC", "clm_00227"), ["unknown_folder"],
    ),
    "protocol method differing from the name": (
        "TTS-VC/pef_00301", "TTS-VC-Diff-pef_00301_0099", "pef_00301 TTS-VC-Diff-pef_00301_0099 - TTS-Diff spoof",
        ("spoof", "TTS-Diff", "TTS-VC", "pef_00301"), ["protocol_method"],
    ),
}


@pytest.mark.parametrize("case", list(VARIANT_CASES))
def test_layout_variants_are_accepted_labelled_by_folder_and_reported(tmp_path, caplog, case):
    folder, stem, line, expected, variants = VARIANT_CASES[case]
    dataset = build_full_release(tmp_path, protocol=line is not None)
    write_wav(dataset / folder / f"{stem}.wav", 99)
    if line:
        edit_protocol(dataset, append=[line])
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        stats = prepare_habla(str(tmp_path), str(out), split_ratios=RATIOS, cross_split_spoofs="target")
    rows = {r["ID"]: r for split_rows in manifests(out).values() for r in split_rows}
    row = rows[stem]
    assert (row["label"], row["attack"], row["family"], row["speaker"]) == expected
    assert sorted(v["variant"] for v in stats["layout_variants"]) == variants
    top = folder.split("/")[0]
    for entry in stats["layout_variants"]:
        assert (entry["folder"], entry["method"], entry["files"]) == (top, expected[1], 1)
        assert entry["example"].endswith(f"{stem}.wav")
    assert stats["files_by_folder"][top][expected[1]] >= 1
    assert sum(n for methods in stats["files_by_folder"].values() for n in methods.values()) == len(
        fixture_entries()
    ) + 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("HABLA: 1 file departs")
    assert stem in warnings[0]
    # The per-family EERs read the family column: the whole fixture too.
    families = {r["family"] for r in rows.values() if r["label"] == "spoof"}
    assert {"CycleGAN", "StarGAN", "Diff", "TTS", "TTS-VC"} <= families


def test_usual_layout_reports_no_variant(full_prepared, caplog):
    _, stats = full_prepared
    assert stats["layout_variants"] == []
    assert stats["files_by_folder"]["Real"] == {"-": 2 * len(SPEAKERS)}
    assert stats["files_by_folder"]["TTS-VC"] == {"TTS-VC-Diff": len(SPEAKERS) // 2}


@pytest.mark.parametrize(
    "folder, stem, line, message",
    [
        # Folders decide the label: a protocol cannot make a Real/ file a spoof...
        ("Real/Chile/clm_00227", "clm_00227_0000000042", "clm_00227 clm_00227_0000000042 - TTS spoof",
         r"labelled spoof but .*clm_00227_0000000042\.wav is in Real/"),
        # ... nor a file in a spoof folder bona fide.
        ("TTS-VC/TTS-StarGAN", ISSUE_STEM, f"pef_02790 {ISSUE_STEM} - - bonafide",
         r"labelled bonafide but .* is in TTS-VC/, which holds spoof files"),
    ],
)
def test_labels_contradicting_folders_stay_errors(tmp_path, folder, stem, line, message):
    dataset = build_full_release(tmp_path)
    write_wav(dataset / folder / f"{stem}.wav", 99)
    n_lines = edit_protocol(dataset, append=[line])
    with pytest.raises(ProtocolError, match=rf"protocol\.txt:{n_lines + 1}: {message}"):
        prepare_habla(str(tmp_path), str(tmp_path / "out"), split_ratios=RATIOS)
