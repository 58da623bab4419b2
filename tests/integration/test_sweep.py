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


def test_sweep_runs_each_setting_and_resumes(tmp_path, la_data, tiny_ssl):
    root = tmp_path / "sweep"
    args = [
        "--recipe", "ASVspoof2019", "--hparams", "ffn.yaml", "--ssl", tiny_ssl,
        "--n_layers", "2", "--seeds", "1", "2", "--root", str(root), "--",
        f"--data_folder={la_data}", f"--manifest_folder={tmp_path / 'manifests'}",
        "--number_of_epochs=1", "--batch_size=4", "--max_samples=16000", "--num_workers=0",
    ]
    out = sweep(*args)
    assert "[2/2]" in out
    again = sweep(*args)  # everything finished: nothing reruns
    assert again.count("(done)") == 2

    run = root / "ASVspoof2019" / os.path.basename(tiny_ssl) / "ffn" / "N2" / "seed2"
    results = json.loads((run / "results.json").read_text())
    assert results["config"]["seed"] == 2 and results["config"]["n_layers"] == 2


def assert_aggregates(root, summary, ssl, heads):
    """Tables and figures of a sweep over ``heads`` x (N1, N2) x seeds 1 and 7."""
    written = aggregate(str(root), str(summary))
    rows = list(csv.DictReader(open(summary / "eer_table.csv")))
    assert sorted((r["ssl"], r["head"], r["n_layers"]) for r in rows) == sorted(
        (ssl, head, n) for head in heads for n in ("1", "2"))
    runs = [root / "ASVspoof2019" / ssl / "ffn" / "N2" / seed for seed in ("seed1", "seed7")]
    eers = [json.loads((run / "results.json").read_text())["test_sets"]["eval"]["eer"] for run in runs]
    (ffn2,) = [r for r in rows if (r["head"], r["n_layers"]) == ("ffn", "2")]
    assert float(ffn2["ASVspoof2019/eval/eer_mean"]) == pytest.approx(sum(eers) / 2, abs=1e-4)
    assert ffn2["ASVspoof2019/eval/n_seeds"] == "2"
    pngs = [p for p in written if p.endswith(".png")]
    assert sorted(os.path.basename(p) for p in pngs) == sorted(
        ["eer_vs_depth_ASVspoof2019_eval.png",
         *(f"heatmap_{ssl}_{head}_N{n}.png" for head in heads for n in (1, 2))])
    for path in pngs:
        with open(path, "rb") as fin:
            assert fin.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "(2)" in (summary / "eer_table.md").read_text()


def test_missing_cells_are_shown_as_missing_not_zero():
    records = [
        {"dataset": "A", "ssl": "s", "head": "ffn", "n_layers": 2, "eer": {"eval": 4.0}},
        {"dataset": "B", "ssl": "s", "head": "ffn", "n_layers": 4, "eer": {"eval": 0.0}},
    ]
    table = format_markdown(*eer_table(records)).splitlines()
    assert table[2] == "| s | ffn | 2 | 4.00 ± 0.00 (1) | - |"
    assert table[3] == "| s | ffn | 4 | - | 0.00 ± 0.00 (1) |"


def test_branched_sweep_is_one_run_per_ssl_resumes_and_aggregates(tmp_path, la_data, tiny_ssl):
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
    assert_aggregates(root, tmp_path / "summary", os.path.basename(tiny_ssl), ["ffn", "aasist"])

    # Other seeds into the same folder: refused, naming the folder.
    other = [a if a != "7" else "8" for a in args]
    result = subprocess.run([sys.executable, "-m", "lobes.sweep", *other], capture_output=True, text=True)
    assert result.returncode == 1
    assert "another configuration" in (run / "sweep.log").read_text()
