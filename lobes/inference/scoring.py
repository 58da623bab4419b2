"""What scoring a recording reads and returns, below every loader and scorer.

Audio reading, the windows of a long recording, the aggregation of window
scores and the ``DetectionResult`` of one recording: the detector, the
streaming scorer and the command line all build on these, and none of them
is imported here.
"""

from dataclasses import dataclass

import numpy as np
import soundfile as sf  # noqa: F401  (doctests write files with it)

from lobes.dataio.dataset import SAMPLE_RATE, load_audio

AGGREGATIONS = ("mean", "min")


@dataclass(frozen=True)
class DetectionResult:
    """Scores of one recording.

    Attributes
    ----------
    score : float
        Utterance score, the bona fide logit (higher = more bona fide);
        with windows, the aggregate of ``window_scores``.
    window_scores : tuple of float
        One score per scored segment (a single one without windowing).
    window_starts : tuple of float
        Start of each segment in seconds.
    duration : float
        Length of the recording in seconds.
    llr, posterior : float or None
        With a calibrated detector: the calibrated LLR of ``score`` and the
        posterior probability of bona fide at the detector's ``prior``.
    window_llrs : tuple of float or None
        The calibrated LLR of each window score.
    """

    score: float
    window_scores: tuple
    window_starts: tuple
    duration: float
    llr: float = None
    posterior: float = None
    window_llrs: tuple = None


def read_audio(path, sample_rate=SAMPLE_RATE):
    """Reads any soundfile-readable file as mono float32 at ``sample_rate``.

    Channels are averaged; other sample rates are resampled with
    ``torchaudio.functional.resample``. Errors name the file.

    Example
    -------
    >>> path = getfixture("tmp_path") / "stereo.wav"
    >>> sf.write(path, np.ones((8000, 2)) * [0.2, 0.4], 8000)
    >>> wav = read_audio(path)
    >>> wav.shape, round(float(wav[4000]), 4)
    (torch.Size([16000]), 0.3)
    """
    return load_audio(path, sample_rate, resample=True)


def window_starts(n_samples, window, hop):
    """Start samples of windows covering ``n_samples``; the last one ends the signal.

    Example
    -------
    >>> window_starts(10, 4, 3)
    [0, 3, 6]
    >>> window_starts(11, 4, 3)
    [0, 3, 6, 7]
    >>> window_starts(3, 4, 3)
    [0]
    """
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got {window} and {hop}")
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def aggregate(scores, aggregation):
    """Utterance score from window scores: ``"mean"`` or ``"min"``.

    Example
    -------
    >>> aggregate([1.0, -2.0, 4.0], "mean"), aggregate([1.0, -2.0, 4.0], "min")
    (1.0, -2.0)
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    return float(np.mean(scores)) if aggregation == "mean" else float(np.min(scores))
