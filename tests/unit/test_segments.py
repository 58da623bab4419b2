"""Frame scores pooled to label segments, segment EER and segment score files."""

import numpy as np
import pytest

from lobes.evaluation.segments import (
    frames_per_segment,
    labels_from_string,
    pool_to_segments,
    read_segment_scores,
    segment_eer,
    write_segment_scores,
)


@pytest.mark.parametrize("resolution, frames", [(0.02, 1), (0.04, 2), (0.32, 16), (0.64, 32)])
def test_frames_per_segment(resolution, frames):
    assert frames_per_segment(resolution) == frames


def test_min_pooling_marks_a_segment_spoof_if_any_frame_is():
    frames = np.array([2.0, 2.0, -3.0, 2.0, 2.0, 2.0])
    assert pool_to_segments(frames, 2, 3).tolist() == [2.0, -3.0, 2.0]
    assert pool_to_segments(frames, 2, 3, reduce="mean").tolist() == [2.0, -0.5, 2.0]


def test_pooling_aligns_label_counts_that_differ_from_frames():
    frames = np.arange(5.0)
    assert pool_to_segments(frames, 2, 2).tolist() == [0.0, 2.0]  # surplus frame ignored
    assert pool_to_segments(frames, 2, 4).tolist() == [0.0, 2.0, 4.0, 4.0]  # last frame repeated
    with pytest.raises(ValueError):
        pool_to_segments([], 1, 1)
    with pytest.raises(ValueError):
        pool_to_segments(frames, 1, 5, reduce="max")


def test_segment_eer_pools_all_segments_official_definition():
    # Known answer of the official EER: 0.225 (REFERENCE section 3).
    scores = [[0.9, 0.6, 0.8], [0.4, 0.7, 0.2], [0.3, 0.1, 0.05]]
    labels = [[1, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert segment_eer(scores, labels) == pytest.approx(0.225)
    with pytest.raises(ValueError):
        segment_eer([[1.0, 2.0]], [[1]])


def test_labels_from_string():
    assert labels_from_string("0110").tolist() == [0, 1, 1, 0]
    for bad in ("", "012"):
        with pytest.raises(ValueError):
            labels_from_string(bad)


def test_segment_score_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "eval_segments_20ms.txt"
    write_segment_scores(path, [("CON_E_1", [0.5, -1.25]), ("LA_E_2", [3.0])])
    assert path.read_text().splitlines() == [
        "CON_E_1 0 0.500000", "CON_E_1 1 -1.250000", "LA_E_2 0 3.000000"
    ]
    assert read_segment_scores(path) == {"CON_E_1": [0.5, -1.25], "LA_E_2": [3.0]}
    with pytest.raises(ValueError, match="scored twice"):
        write_segment_scores(path, [("A", [1.0]), ("A", [2.0])])
    path.write_text("A 0 1.0\nA 2 1.0\n")
    with pytest.raises(ValueError, match=f"{path}:2: segment 2 of A out of order"):
        read_segment_scores(path)
    path.write_text("A 0 x\n")
    with pytest.raises(ValueError, match=f"{path}:1"):
        read_segment_scores(path)
