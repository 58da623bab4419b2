"""benchmarks/gpu.py runs every path on CPU with --quick (never its timings)."""

import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import gpu  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu")
    assert gpu.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    with open(out / "gpu.json", encoding="utf-8") as fin:
        return json.load(fin), (out / "gpu.md").read_text(encoding="utf-8")


def test_every_setting_has_figures_and_no_error(quick_run):
    result, _ = quick_run
    rows = result["rows"]
    assert not [r for r in rows if "error" in r]
    model_rows = [r for r in rows if r["task"] != "decode FLAC"]
    # base and large, one depth each in --quick, 3 precisions, 2 heads + scoring.
    assert len(model_rows) == 2 * 3 * 3
    assert {(r["precision"], r["task"]) for r in model_rows} == {
        (p, t) for p in gpu.PRECISIONS for t in ("train ffn", "train aasist", "score")}
    for row in model_rows:
        key = "files_per_s" if row["task"] == "score" else "steps_per_s"
        assert row[key] > 0
        assert row["peak_mb"] is None  # CPU: no GPU memory to report
    score = next(r for r in model_rows if r["task"] == "score")
    assert score["rtf"] == pytest.approx(1 / (score["files_per_s"] * 0.5))
    decode = [r for r in rows if r["task"] == "decode FLAC"]
    assert [r["workers"] for r in decode] == list(gpu.QUICK_WORKERS)
    assert all(r["files_per_s"] > 0 for r in decode)


def test_table_and_bottleneck_note_are_written(quick_run):
    result, markdown = quick_run
    lines = markdown.splitlines()
    assert "QUICK (tiny models)" in lines[0]
    assert sum(line.startswith("| wav2vec2-") for line in lines) == 18
    assert "decode FLAC (2 workers)" in markdown
    assert result["note"] in markdown and "FLAC decoding" in result["note"]


def test_without_the_project_or_soundfile_the_rows_say_why(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu, "project_modules", lambda: (None, "model rows skipped: no speechbrain"))
    monkeypatch.setitem(sys.modules, "soundfile", None)  # import soundfile -> ImportError
    assert gpu.main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "gpu.json").read_text())["rows"]
    assert rows[0]["error"] == "model rows skipped: no speechbrain"
    assert len(rows) == 2 and rows[1]["error"].startswith("skipped:")
    assert "soundfile" in rows[1]["error"]


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(gpu.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA device"):
        gpu.main(["--device", "cuda"])
