"""Segment-level (localisation) scoring: frame scores pooled to label segments.

A frame-level model scores every SSL frame (20 ms). Segment labels come at
coarser resolutions (PartialSpoof: 20 ms to 640 ms); a segment of ``r``
seconds covers ``r / 0.02`` frames. Scores follow the project convention:
higher = more bona fide, so a segment is as bona fide as its *least* bona
fide frame (``"min"``), which matches how coarse labels are built (a segment
is spoof when any part of it is spoof).
"""

import numpy as np

from lobes.evaluation.metrics import compute_eer
from lobes.utils.files import atomic_write_text, numbered_lines

FRAME_SECONDS = 0.02
REDUCTIONS = ("min", "mean")


def frames_per_segment(resolution, frame_seconds=FRAME_SECONDS):
    """Number of frames in one segment of ``resolution`` seconds.

    Example
    -------
    >>> frames_per_segment(0.16)
    8
    >>> frames_per_segment(0.01)
    Traceback (most recent call last):
    ...
    ValueError: resolution 0.01 s is not a whole number of 0.02 s frames
    """
    ratio = resolution / frame_seconds
    count = int(round(ratio))
    if count < 1 or abs(ratio - count) > 1e-6:
        raise ValueError(
            f"resolution {resolution} s is not a whole number of {frame_seconds} s frames"
        )
    return count


def pool_to_segments(frame_scores, frames_per_seg, n_segments, reduce="min"):
    """Pools frame scores to ``n_segments`` consecutive segments.

    Segment ``i`` covers frames ``[i * k, (i + 1) * k)``. Labels and SSL
    frames can disagree by a frame or two at the end of an utterance (label
    files round the duration their own way), so missing trailing frames
    repeat the last frame score and surplus frames are ignored.

    Arguments
    ---------
    frame_scores : array-like
        Scores of the real frames of one utterance (T,).
    frames_per_seg : int
        Frames in a segment (``frames_per_segment(resolution)``).
    n_segments : int
        Number of labelled segments.
    reduce : str
        ``"min"`` (default) or ``"mean"`` over the frames of a segment.

    Example
    -------
    >>> pool_to_segments([3.0, 1.0, 2.0, 5.0, 4.0], 2, 3).tolist()
    [1.0, 2.0, 4.0]
    >>> pool_to_segments([3.0, 1.0], 1, 3, reduce="mean").tolist()
    [3.0, 1.0, 1.0]
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    scores = np.asarray(frame_scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("no frame scores to pool")
    needed = frames_per_seg * n_segments
    if scores.size < needed:
        scores = np.concatenate([scores, np.full(needed - scores.size, scores[-1])])
    grid = scores[:needed].reshape(n_segments, frames_per_seg)
    return grid.min(axis=1) if reduce == "min" else grid.mean(axis=1)


def label_column(resolution):
    """Manifest column of the segment labels at ``resolution`` seconds
    (written by the PartialSpoof recipe's prepare step): ``"0.02"`` or 0.02
    -> ``"seglab_20"`` (ms).

    Example
    -------
    >>> label_column("0.64"), label_column(0.02)
    ('seglab_640', 'seglab_20')
    """
    return f"seglab_{int(round(float(resolution) * 1000))}"


def labels_from_string(labels):
    """``"1101"`` (1 = bona fide, 0 = spoof) -> int array.

    Example
    -------
    >>> labels_from_string("1101").tolist()
    [1, 1, 0, 1]
    """
    array = np.frombuffer(labels.encode("ascii"), dtype=np.uint8) - ord("0")
    if array.size == 0 or array.max() > 1:
        raise ValueError(f"segment labels must be a non-empty string of 0/1, got {labels!r}")
    return array.astype(np.int64)


def segment_eer(segment_scores, segment_labels):
    """Segment-level EER (a fraction) over all segments of all utterances.

    Arguments
    ---------
    segment_scores : list of array-like
        Per utterance, one score per segment (higher = bona fide).
    segment_labels : list of array-like
        Per utterance, one label per segment (1 = bona fide, 0 = spoof).

    Example
    -------
    >>> segment_eer([[2.0, -1.0], [1.5]], [[1, 0], [1]])
    0.0
    """
    scores = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in segment_scores])
    labels = np.concatenate([np.asarray(labels).ravel() for labels in segment_labels])
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} segment scores for {labels.size} labels")
    return compute_eer(scores[labels == 1], scores[labels == 0])[0]


def write_segment_scores(path, utterances):
    """Writes ``UTT_ID SEGMENT_INDEX SCORE`` lines, atomically.

    Arguments
    ---------
    path : str
        Output file.
    utterances : iterable of (str, array-like)
        Utterance id and its segment scores; ids must be unique.

    Example
    -------
    >>> path = getfixture("tmp_path") / "seg.txt"
    >>> write_segment_scores(path, [("CON_E_1", [0.5, -1.0])])
    >>> read_segment_scores(path)
    {'CON_E_1': [0.5, -1.0]}
    """
    lines, seen = [], set()
    for utt_id, scores in utterances:
        if utt_id in seen:
            raise ValueError(f"utterance {utt_id!r} scored twice while writing {path}")
        seen.add(utt_id)
        lines.extend(f"{utt_id} {index} {score:.6f}\n" for index, score in enumerate(scores))
    atomic_write_text(str(path), "".join(lines))


def read_segment_scores(path):
    """Reads a segment score file: utterance id -> scores in segment order.

    Errors name the file and line.
    """
    result = {}
    for line_no, fields, line in numbered_lines(path, "segment score file"):
        try:
            utt_id, index, score = fields[0], int(fields[1]), float(fields[2])
            if len(fields) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(
                f"{path}:{line_no}: expected 'UTT_ID SEGMENT_INDEX SCORE', got {line.strip()!r}"
            ) from None
        scores = result.setdefault(utt_id, [])
        if index != len(scores):
            raise ValueError(
                f"{path}:{line_no}: segment {index} of {utt_id} out of order "
                f"(expected {len(scores)})"
            )
        scores.append(score)
    return result
