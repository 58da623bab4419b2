"""Spoofed regions, RTTM files and region-level metrics (no model needed)."""

import io
import json

import numpy as np
import pytest

from lobes.evaluation.region_metrics import region_metrics
from lobes.evaluation.regions import center_spans, merge_regions, timeline_regions
from lobes.evaluation.rttm import format_rttm, read_rttm, write_rttm
from lobes.evaluation.timeline import read_timeline, write_timeline
from lobes.inference import cli as detect
from lobes.inference.stdin_stream import pcm_chunks

LINE = "SPEAKER x 1 {} {} <NA> <NA> spoof <NA> <NA>\n"


def _rows(path, scores, window=2.0, hop=0.5):
    return [{"file": path, "start": i * hop, "end": i * hop + window, "score": s,
             "llr": None, "posterior": None} for i, s in enumerate(scores)]


@pytest.mark.parametrize("text, message", [
    (LINE.format(-1.0, 2.0), "r.rttm:1: start must be >= 0 and duration > 0"),
    (LINE.format(1.0, 0.0), "r.rttm:1: start must be >= 0 and duration > 0"),
    (LINE.format("a", 1.0), "r.rttm:1: start and duration must be numbers"),
    ("SPEAKER x 1 0.0\n", "r.rttm:1: expected an RTTM line of 10 fields"),
    (LINE.format(0.0, 2.0) + LINE.format(5.0, 1.0) + LINE.format(1.5, 1.0),
     "r.rttm:3: spoof region 1.5-2.5 of x overlaps 0.0-2.0 \\(line 1\\)"),
])
def test_bad_rttm_is_refused_naming_the_line(tmp_path, text, message):
    path = tmp_path / "r.rttm"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_rttm(path)


def test_rttm_round_trip_and_duplicate_ids(tmp_path):
    regions = {"a/call.wav": [(1.0, 2.5), (4.0, 6.0)], "b/other.flac": []}
    write_rttm(tmp_path / "r.rttm", regions)
    assert read_rttm(tmp_path / "r.rttm") == {"call": [(1.0, 2.5), (4.0, 6.0)]}
    # Speaker lines of a diarisation RTTM are ignored, touching regions are fine.
    (tmp_path / "d.rttm").write_text(
        "SPEAKER call 1 0.0 5.0 <NA> <NA> spk1 <NA> <NA>\n" + LINE.format(0.0, 1.0)
        + LINE.format(1.0, 1.0))
    assert read_rttm(tmp_path / "d.rttm") == {"x": [(0.0, 1.0), (1.0, 2.0)]}
    with pytest.raises(ValueError, match="a/call.wav and b/call.flac share the RTTM file id"):
        format_rttm({"a/call.wav": [], "b/call.flac": []})


def test_regions_from_a_timeline():
    # Windows 2 s, hop 0.5 s; those overlapping 6-10 s score low.
    starts = np.arange(0, 14.5, 0.5)
    scores = [(-1.0 if s + 2 > 6.5 and s < 9.5 else 1.0) for s in starts]
    rows = _rows("f.wav", scores)
    regions = timeline_regions(rows, threshold=0.0)
    assert len(regions) == 1
    (start, end), = regions
    assert abs(start - 6.0) <= 1.25 and abs(end - 10.0) <= 1.25
    # A lone spoofed window is dropped by a minimum duration, joined by a merge gap.
    lone = [1.0] * 10 + [-1.0] + [1.0] * 10 + [-1.0] * 6 + [1.0]
    assert len(timeline_regions(_rows("f.wav", lone), threshold=0.0)) == 2
    assert len(timeline_regions(_rows("f.wav", lone), threshold=0.0, min_duration=1.0)) == 1
    with pytest.raises(ValueError, match="give a raw-score --threshold"):
        timeline_regions(rows)  # no calibration, no threshold
    assert center_spans([0.0, 1.0, 1.5], [2.0, 3.0, 3.5]) == [(0.0, 1.5), (1.5, 2.25), (2.25, 3.5)]
    with pytest.raises(ValueError, match="merge_gap must be >= 0"):
        merge_regions([(0, 1)], [True], merge_gap=-1)


def test_region_metrics_and_timeline_files(tmp_path):
    starts = np.arange(0, 14.5, 0.5)
    perfect = _rows("spliced.wav", [(-1.0 if s + 2 > 6 and s < 10 else 1.0) for s in starts])
    clean = _rows("clean.wav", [1.0] * 29)
    for name in ("t.csv", "t.jsonl"):
        write_timeline(tmp_path / name, perfect + clean)
        assert read_timeline(tmp_path / name) == perfect + clean
    metrics = region_metrics(perfect + clean, {"spliced": [(6.0, 10.0)]})
    assert metrics["files"] == 2 and metrics["windows"] == 58
    assert metrics["utterance_eer"] == 0.0 and metrics["segment_eer"] == 0.0
    # Time attributed by nearest window centre: the edges cost a little.
    assert 0.0 < metrics["range_eer"] < 0.1
    flipped = [dict(r, score=-r["score"]) for r in perfect]
    assert region_metrics(flipped + clean, {"spliced": [(6.0, 10.0)]})["segment_eer"] > 0.5
    (tmp_path / "bad.csv").write_text("file,start,end,score,llr,posterior\na.wav,x,1,1,,\n")
    with pytest.raises(ValueError, match="bad.csv:2: not a timeline row"):
        read_timeline(tmp_path / "bad.csv")


def test_pcm_chunks_drop_an_incomplete_trailing_frame(capsys):
    data = (np.arange(10, dtype="<i2") * 1000).tobytes() + b"\x07"  # 5 stereo frames + 1 byte
    stream = io.BytesIO(data)
    chunks = list(pcm_chunks(lambda n: stream.read(n * 4), 2, 3))
    assert [c.shape for c in chunks] == [(3, 2), (2, 2)]
    assert chunks[0][1, 0] == pytest.approx(2000 / 32768)
    assert "dropped its last 1 bytes" in capsys.readouterr().err


def test_detect_usage_errors_before_the_model_loads(tmp_path, capsys):
    model, audio = tmp_path / "model", tmp_path / "a.wav"
    model.mkdir()
    audio.write_bytes(b"")
    assert detect.main([str(model), str(audio), "--timeline", str(tmp_path / "t.txt")]) == 2
    assert "use a .csv or .jsonl extension" in capsys.readouterr().err
    assert detect.main([str(model), str(audio), "--stream"]) == 2
    assert "give '-' as the only PATH" in capsys.readouterr().err
    assert detect.main([str(model), str(audio), "--rttm", str(tmp_path / "r.rttm")]) == 2
    assert "has no calibration.json (posterior rule), so give a raw-score --threshold" in \
        capsys.readouterr().err
    (model / "calibration.json").write_text(json.dumps({"a": 0, "b": 1, "prior": 0.5}))
    assert detect.main([str(model), str(audio), "--rttm", str(tmp_path / "r.rttm")]) == 2
    assert "calibration.json: expected numbers a > 0" in capsys.readouterr().err
    assert detect.main([str(model), str(audio), "--prior", "1.0"]) == 2
    expected = "--prior must be null (the cost model's effective prior) or a bona fide prior in (0, 1)"
    assert expected in capsys.readouterr().err


def test_partialspoof_segment_scores_to_rttm(tmp_path, capsys):
    from lobes.inference.segment_rttm import main

    scores = tmp_path / "eval_segments_160ms.txt"
    scores.write_text("U1 0 2.0\nU1 1 -1.0\nU1 2 -3.0\nU1 3 1.0\nU1 4 -1.0\nU2 0 1.0\n")
    out = tmp_path / "r.rttm"
    assert main([str(scores), "--threshold", "0", "--out", str(out)]) == 0
    assert read_rttm(out) == {"U1": [(0.16, 0.48), (0.64, 0.8)]}
    assert main([str(scores), "--threshold", "0", "--merge-gap", "0.16", "--out", str(out)]) == 0
    assert read_rttm(out) == {"U1": [(0.16, 0.8)]}
    unnamed = tmp_path / "segments.txt"
    unnamed.write_text(scores.read_text())
    assert main([str(unnamed), "--threshold", "0", "--out", str(out)]) == 2
    assert "give --resolution" in capsys.readouterr().err


def test_partialspoof_labels_to_reference_rttm(tmp_path, capsys):
    """--labels turns a PartialSpoof manifest's segment labels into the
    reference regions lobes.region_eval reads (bona fide files: no line)."""
    from lobes.inference.segment_rttm import main

    manifest = tmp_path / "eval.csv"
    manifest.write_text("ID,duration,seglab_20,seglab_160\n"
                        "CON_E_1,0.16,11100011,0\n"
                        "LA_E_2,0.16,11111111,1\n"
                        "CON_E_3,0.16,00111111,0\n")
    out = tmp_path / "truth.rttm"
    assert main(["--labels", str(manifest), "--out", str(out)]) == 0
    assert read_rttm(out) == {"CON_E_1": [(0.06, 0.12)], "CON_E_3": [(0.0, 0.04)]}
    assert main(["--labels", str(manifest), "--resolution", "0.16", "--out", str(out)]) == 0
    assert read_rttm(out) == {"CON_E_1": [(0.0, 0.16)], "CON_E_3": [(0.0, 0.16)]}

    # Errors name the file (and line) and what is wrong.
    assert main(["--labels", str(manifest), "--resolution", "0.04", "--out", str(out)]) == 2
    assert f"{manifest}:1: a manifest with ID and seglab_40 columns" in capsys.readouterr().err
    manifest.write_text("ID,seglab_20\nCON_E_1,11x1\n")
    assert main(["--labels", str(manifest), "--out", str(out)]) == 2
    assert f"{manifest}:2: CON_E_1: segment labels must be" in capsys.readouterr().err
    for bad in (["--out", str(out)], ["--labels", str(manifest), "--threshold", "0", "--out", str(out)]):
        with pytest.raises(SystemExit):
            main(bad)


def test_formats_soundfile_cannot_read_are_decoded_by_pyav(tmp_path):
    import av
    import torch

    from lobes.inference.blockread import audio_length, iter_blocks, read_head
    from lobes.inference.streaming import read_unless_long

    path = tmp_path / "clip.m4a"
    x = (0.2 * np.sin(2 * np.pi * 440 * np.arange(3 * 44100) / 44100)).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.stack([x, x]), format="fltp", layout="stereo")
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    whole = torch.cat(list(iter_blocks(path, block_seconds=0.5)))
    # AAC adds priming and padding samples: about 3 s at 16 kHz, not exactly.
    assert abs(whole.shape[0] - 48000) < 2000 and abs(audio_length(path) - 48000) < 2000
    assert float(whole[16000:32000].abs().max()) == pytest.approx(0.2, abs=0.02)
    assert torch.allclose(read_head(path, 8000), whole[:8000], atol=1e-6)
    assert torch.equal(read_unless_long(path), whole)
    (tmp_path / "junk.m4a").write_bytes(b"not audio at all")
    with pytest.raises(RuntimeError, match="cannot read audio file .*junk.m4a"):
        list(iter_blocks(tmp_path / "junk.m4a"))
