"""A tiny sweep end to end: runner, resumption, tables and figures."""

import csv
import json
import os
import subprocess
import sys

import pytest

from lobes.experiments.aggregate import aggregate, eer_table, format_markdown, load_results
from lobes.testing.synthetic import make_synthetic_la


def sweep(*args):
    result = subprocess.run(
        [sys.executable, "-m", "lobes.sweep", *args], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def la_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("la_sweep")
    counts = {"train": 4, "dev": 3, "eval": 3}
    make_synthetic_la(folder, counts, counts, seconds=(0.6, 0.9), seed=11)
    return folder


def test_sweep_runs_resumes_and_aggregates(tmp_path, la_data, tiny_ssl):
    root = tmp_path / "sweep"
    args = [
        "--recipe", "ASVspoof2019", "--hparams", "ffn.yaml", "--ssl", tiny_ssl,
        "--n_layers", "1", "2", "--seeds", "1", "2", "--root", str(root), "--",
        f"--data_folder={la_data}", f"--manifest_folder={tmp_path / 'manifests'}",
        "--number_of_epochs=1", "--batch_size=4", "--max_samples=16000", "--num_workers=0",
    ]
    out = sweep(*args)
    assert "[4/4]" in out
    again = sweep(*args)  # everything finished: nothing reruns
    assert again.count("(done)") == 4

    ssl = os.path.basename(tiny_ssl)
    run = root / "ASVspoof2019" / ssl / "ffn" / "N2" / "seed2"
    results = json.loads((run / "results.json").read_text())
    assert results["config"]["seed"] == 2 and results["config"]["n_layers"] == 2

    summary = tmp_path / "summary"
    written = aggregate(str(root), str(summary))
    rows = list(csv.DictReader(open(summary / "eer_table.csv")))
    assert [(r["ssl"], r["head"], r["n_layers"]) for r in rows] == [(ssl, "ffn", "1"), (ssl, "ffn", "2")]
    eers = [
        json.loads((root / "ASVspoof2019" / ssl / "ffn" / "N2" / f"seed{s}" / "results.json").read_text())[
            "test_sets"]["eval"]["eer"]
        for s in (1, 2)
    ]
    assert float(rows[1]["ASVspoof2019/eval/eer_mean"]) == pytest.approx(sum(eers) / 2, abs=1e-4)
    assert rows[1]["ASVspoof2019/eval/n_seeds"] == "2"
    pngs = [p for p in written if p.endswith(".png")]
    assert sorted(os.path.basename(p) for p in pngs) == [
        "eer_vs_depth_ASVspoof2019_eval.png", f"heatmap_{ssl}_ffn_N1.png", f"heatmap_{ssl}_ffn_N2.png",
    ]
    for path in pngs:
        with open(path, "rb") as fin:
            assert fin.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "(2)" in (summary / "eer_table.md").read_text()


def test_multi_depth_sweep_writes_one_result_per_depth(tmp_path, la_data, tiny_ssl):
    root = tmp_path / "sweep"
    out = sweep(
        "--recipe", "ASVspoof2019", "--ssl", tiny_ssl, "--n_layers", "2", "1", "--multi_depth",
        "--root", str(root), "--", f"--data_folder={la_data}", "--number_of_epochs=1",
        "--batch_size=4", "--max_samples=16000", "--num_workers=0",
    )
    assert "[1/1]" in out
    records = load_results(str(root))
    assert sorted(r["n_layers"] for r in records) == [1, 2]
    assert all(len(r["layer_weights"]) == r["n_layers"] for r in records)


def test_missing_cells_are_shown_as_missing_not_zero():
    records = [
        {"dataset": "A", "ssl": "s", "head": "ffn", "n_layers": 2, "eer": {"eval": 4.0}},
        {"dataset": "B", "ssl": "s", "head": "ffn", "n_layers": 4, "eer": {"eval": 0.0}},
    ]
    table = format_markdown(*eer_table(records)).splitlines()
    assert table[2] == "| s | ffn | 2 | 4.00 ± 0.00 (1) | - |"
    assert table[3] == "| s | ffn | 4 | - | 0.00 ± 0.00 (1) |"


def test_branched_sweep_is_one_run_per_ssl_and_resumes(tmp_path, la_data, tiny_ssl):
    root = tmp_path / "sweep"
    args = ["--recipe", "ASVspoof2019", "--hparams", "ffn.yaml", "aasist.yaml", "--ssl", tiny_ssl,
            "--n_layers", "2", "1", "--seeds", "1", "7", "--branched", "--root", str(root), "--",
            f"--data_folder={la_data}", "--number_of_epochs=1", "--batch_size=4",
            "--max_samples=16000", "--num_workers=0"]
    assert "[1/1]" in sweep(*args)
    records = load_results(str(root))
    assert sorted((r["head"], r["n_layers"], r["seed"]) for r in records) == sorted(
        (h, n, s) for h in ("ffn", "aasist") for n in (1, 2) for s in (1, 7))
    run = root / "ASVspoof2019" / os.path.basename(tiny_ssl)
    log = (run / "train_log.txt").read_text()

    # A lost branch result: the rerun only rescores (every branch finished training).
    (run / "aasist" / "N2" / "seed7" / "results.json").unlink()
    assert "7 of 8 branches done" in sweep(*args)
    assert (run / "aasist" / "N2" / "seed7" / "results.json").is_file()
    assert (run / "train_log.txt").read_text() == log
    assert "(done, 8 of 8 branches done)" in sweep(*args)

    # Other seeds into the same folder: refused, naming the folder.
    other = [a if a != "7" else "8" for a in args]
    result = subprocess.run([sys.executable, "-m", "lobes.sweep", *other], capture_output=True, text=True)
    assert result.returncode == 1
    assert "another configuration" in (run / "sweep.log").read_text()
