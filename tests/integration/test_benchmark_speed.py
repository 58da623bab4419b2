"""The speed benchmarks' bookkeeping on a tiny model (never their timings)."""

import csv
import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The benchmark scripts import their shared helpers as ``common``, as they
# do when run as ``python benchmarks/<script>.py``.
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import common  # noqa: E402
import fast_paths  # noqa: E402
import foundation  # noqa: E402
import overhead  # noqa: E402
import speed  # noqa: E402


@pytest.fixture(scope="module")
def rows(tiny_models):
    source = tiny_models[("wav2vec2", True)]  # 4 layers, stable layer norm
    # Depth 9 does not exist and is dropped; the full depth 4 is added.
    return speed.benchmark_source(source, [2, 1, 9], repeats=1, batch_size=2, n_samples=8000)


def test_rows_cover_depths_and_paper_baseline(rows):
    assert [(r["approach"], r["n_layers"]) for r in rows] == [
        ("truncated", 1), ("truncated", 2), ("truncated", 4), ("paper", 4)
    ]
    for row in rows:
        assert all(row[metric] is not None and row[metric] > 0 for metric in speed.METRICS)


def test_params_and_macs_follow_the_depth(rows):
    by_depth = {r["n_layers"]: r for r in rows if r["approach"] == "truncated"}
    paper = rows[-1]
    # Each layer of the tiny model has the same size: params are affine in N.
    layer = by_depth[2]["params"] - by_depth[1]["params"]
    assert layer > 0
    assert by_depth[4]["params"] == by_depth[1]["params"] + 3 * layer
    # The paper-style encoder holds the same full model.
    assert paper["params"] == by_depth[4]["params"]
    # MACs grow with N but never reach zero: the CNN is a fixed cost.
    macs = [by_depth[n]["gmac_per_s"] for n in (1, 2, 4)]
    assert macs[0] < macs[1] < macs[2] == pytest.approx(paper["gmac_per_s"])
    assert by_depth[2]["gmac_per_s"] - by_depth[1]["gmac_per_s"] == pytest.approx(
        (by_depth[4]["gmac_per_s"] - by_depth[2]["gmac_per_s"]) / 2
    )
    # Fewer layers keep fewer activations alive.
    assert by_depth[1]["peak_mb"] < by_depth[4]["peak_mb"]


def test_ratios_are_against_full_depth_and_paper(rows):
    full, paper = rows[2], rows[3]
    for row in rows:
        for metric in speed.METRICS:
            assert row[f"{metric}/full"] == pytest.approx(row[metric] / full[metric])
            assert row[f"{metric}/paper"] == pytest.approx(row[metric] / paper[metric])
    assert full["params/full"] == 1.0 and paper["latency_ms/paper"] == 1.0
    assert rows[0]["rtf"] == pytest.approx(rows[0]["latency_ms"] / 1000 / 0.5)


def test_macs_match_a_hand_count():
    # Conv1d(3->4, kernel 5) over 6 samples gives 2 frames of 4*3*5 MACs;
    # the linear layer then does 8*6.
    model = torch.nn.Sequential(torch.nn.Conv1d(3, 4, 5), torch.nn.Flatten(1), torch.nn.Linear(8, 6))
    assert common.count_macs(model, torch.randn(1, 3, 6)) == 2 * 4 * 3 * 5 + 8 * 6


def test_memory_tracker_counts_new_tensors_not_views():
    weight = torch.ones(1000)
    with common.TensorMemoryTracker() as tracker:
        view = weight[:500]  # a view: no new memory
        double = weight * 2  # 4,000 new bytes
        del double
        kept = torch.ones(250)  # 1,000 bytes
    assert view.shape == (500,)
    assert tracker.peak_bytes == 4000
    assert tracker.current_bytes == kept.numel() * 4


def test_table_and_csv(rows, tmp_path):
    table = speed.format_table(rows)
    header = table.splitlines()[0].split()
    assert header == [title for _, title, _ in speed.COLUMNS]
    # 4 rows between the header rule and the note.
    assert len(table.splitlines()) == 2 + len(rows) + 1
    assert "(1.00, 1.00)" in table.splitlines()[-2]  # paper row vs itself on params

    path = tmp_path / "speed.csv"
    speed.write_csv(path, rows)
    with open(path, newline="") as fin:
        written = list(csv.DictReader(fin))
    assert list(written[0]) == speed.csv_fields()
    assert [int(r["n_layers"]) for r in written] == [1, 2, 4, 4]
    assert float(written[1]["params/full"]) == pytest.approx(rows[1]["params/full"])


def test_markdown_table(rows):
    lines = speed.format_markdown(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert all(line.count("|") == 10 for line in lines)
    assert "| paper (4, sliced) |" in lines[-1] and "| 1.00x |" in lines[-1]


def test_csv_round_trip_and_gap_summary(rows, tmp_path):
    path = tmp_path / "speed.csv"
    speed.write_csv(path, rows)
    again = speed.read_csv(path)
    assert [(r["model"], r["approach"], r["n_layers"]) for r in again] == [
        (r["model"], r["approach"], r["n_layers"]) for r in rows
    ]
    assert again[0]["params/full"] == pytest.approx(rows[0]["params/full"])
    # MACs are exactly affine in N here; the intercept is the CNN's cost.
    fixed, per_layer = speed.fit_fixed_cost(rows, "gmac_per_s")
    assert per_layer > 0 and 0 < fixed < rows[0]["gmac_per_s"]
    summary = speed.gap_summary(rows)
    ideal = 1 / rows[0]["gmac_per_s/paper"]
    assert f"N=1: {1 / rows[0]['latency_ms/paper']:.2f}x (MACs {ideal:.2f}x)" in summary


def test_eer_timer_runs_the_project_eer():
    seconds, eer = foundation.time_eer(n_trials=2000, repeats=1)
    assert seconds > 0
    # Scores drawn from N(1,1) vs N(-1,1): EER near Phi(-1) = 0.159.
    assert 0.11 < eer < 0.21


def test_fast_paths_rows_on_a_tiny_model(tiny_models):
    source = tiny_models[("wavlm", False)]
    rows = fast_paths.benchmark_fast_paths(source, 1, ["int8/eager"], repeats=1, batch_size=2,
                                           n_samples=8000)
    assert [(r["approach"], r["n_layers"]) for r in rows] == [
        ("full fp32", 4), ("paper", 4), ("int8/eager", 1)]
    assert rows[0]["latency_ms/full"] == 1.0 and rows[2]["latency_ms"] > 0
    assert "| int8/eager | 1 |" in fast_paths.format_fast_table(rows)


def test_interleaved_times_run_every_call_each_round():
    calls = []
    times = common.interleaved_times({"a": lambda: calls.append("a"),
                                      "b": lambda: calls.append("b")}, repeats=2, warmup=1)
    assert calls == ["a", "b", "b", "a", "a", "b"]  # the order rotates each round
    assert len(times["a"]) == len(times["b"]) == 2


def test_timed_table_adds_rounds_until_the_control_reads_one():
    rows, rounds = overhead.timed_table({"ref": lambda: None, "other": lambda: None}, "ref",
                                        repeats=2, tolerance=-1, max_attempts=3)
    # A tolerance no control can meet: every attempt runs, then it stops.
    assert rounds == 6
    assert [r["name"] for r in rows] == ["ref", "other", "ref" + overhead.CONTROL]
    assert rows[0]["x_ref"] == 1.0


def test_overhead_tables_on_a_tiny_model(tiny_models):
    source = tiny_models[("wav2vec2", False)]  # 4 layers, GroupNorm CNN
    quiet = lambda message: None  # noqa: E731
    depth = overhead.depth_table(source, [1, 2, 9], 1, 10, 1, quiet, 8000)
    assert [d["n_layers"] for d in depth["depths"]] == [1, 2, 4]
    full = depth["depths"][-1]
    assert full["speedup"] == 1.0 and full["mac_limit"] == 1.0
    assert depth["depths"][0]["mac_limit"] > depth["depths"][1]["mac_limit"] > 1
    assert depth["frontend"]["cnn_gmac"] > 0 and depth["frontend"]["layer_gmac"] > 0
    plain = overhead.plain_table(source, 1, 10, 1, quiet, 8000)
    names = [r["name"] for r in plain["rows"]]
    assert names[0].startswith("HF Wav2Vec2Model forward") and names[-1].endswith(overhead.CONTROL)
    norm = overhead.norm_table(1, 10, 1, quiet, channels=4, frames=50)
    result = {"torch": "t", "transformers": "x", "threads": 1, "seconds": 0.5, "norm": norm,
              "plain": {"tiny": plain}, "depth": {"tiny": depth}}
    text = overhead.markdown(result)
    assert "| LengthMaskedGroupNorm now |" in text and "| 4 | " in text
    assert "| wav2vec2-tiny | 4 (full) |" in overhead.readme_table(result)
