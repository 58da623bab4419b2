"""Window scores of audio that arrives in pieces: a live stream or a long file.

``StreamScorer`` takes chunks of any size (``push``), mixes them down and
resamples them to 16 kHz as they come, and returns the score of every window
as soon as the window is complete. ``close()`` ends the stream and scores
what the offline path (``SpoofDetector.score_waveforms`` with the same
window and hop) scores at the end, so that the two timelines are the same
windows with the same scores (up to float rounding from batching):

- a signal longer than a window whose last regular window stops short of
  the end gets one more window ending exactly at the end (it overlaps the
  previous one; nothing is padded and no sample is left unscored);
- a signal shorter than one window gets one window, the signal tiled to the
  window length, as the recipe pads short trials.

A stream that ends mid-window is therefore never lost silently: its tail is
always in the last window. Only the last ``window`` samples (plus one chunk)
are held, so memory does not grow with the length of the stream.

Latency: a window's score is ready one window length after the window's
first sample arrived (the window must be complete), plus the compute time
of one forward; with a hop shorter than the window a new score arrives every
hop. ``benchmarks/long_audio.py`` measures both.

Example (tests/integration/test_long_audio.py runs this on a trained model)::

    scorer = StreamScorer(detector, window=4.0, hop=1.0, sample_rate=48000, channels=2)
    for chunk in microphone_chunks():          # float32 arrays, (frames, 2)
        for row in scorer.push(chunk):
            print(row.start, row.end, row.score)
    for row in scorer.close():
        print(row.start, row.end, row.score)
"""

from dataclasses import dataclass, replace

import numpy as np
import torch

from lobes.dataio.audio_checks import check_finite
from lobes.dataio.dataset import SAMPLE_RATE, crop_or_tile
from lobes.inference.blockread import StreamResampler, audio_length, iter_blocks, read_head
from lobes.inference.scoring import DetectionResult, aggregate, read_audio
from lobes.utils.choices import DEFAULT_CROP


@dataclass(frozen=True)
class WindowScore:
    """Score of one window: ``start`` and ``end`` in seconds, bona fide logit."""

    start: float
    end: float
    score: float


def _check_chunk(chunk, channels):
    """A pushed chunk as a (frames, channels) float32 numpy array, or a clear error."""
    if isinstance(chunk, torch.Tensor):
        dtype = chunk.dtype
        chunk = chunk.detach().cpu().numpy() if dtype == torch.float32 else chunk
    else:
        dtype = getattr(chunk, "dtype", type(chunk))
    if not isinstance(chunk, np.ndarray) or chunk.dtype != np.float32:
        raise TypeError(
            f"audio chunks must be float32 arrays or tensors in [-1, 1], got {dtype}; "
            "convert 16-bit PCM with samples.astype(np.float32) / 32768"
        )
    if chunk.ndim == 1 and channels == 1:
        return chunk[:, None]
    if chunk.ndim != 2 or chunk.shape[1] != channels:
        raise ValueError(
            f"audio chunks must have shape (frames, {channels})"
            + (" or (frames,)" if channels == 1 else "")
            + f" for a {channels}-channel stream, got {tuple(chunk.shape)}"
        )
    return chunk


class StreamScorer:
    """Scores a stream window by window as the audio arrives.

    Arguments
    ---------
    detector : lobes.inference.SpoofDetector
        The model.
    window : float, optional
        Window length in seconds (the detector's default window, or else its
        crop length ``max_samples``, when omitted).
    hop : float, optional
        Hop in seconds (half a window when omitted).
    sample_rate : int
        Rate of the pushed audio; resampled to 16 kHz as it comes.
    channels : int
        Channels of the pushed audio; averaged to mono.
    batch_size : int, optional
        Most windows per forward (the detector's batch size by default).

    Example
    -------
    >>> class Energy:  # any object with the detector's two members works
    ...     def _resolve_windows(self, window, hop, aggregation):
    ...         return int(window * 16000), int(hop * 16000), aggregation
    ...     def score_batch(self, wavs, lens):
    ...         return wavs.abs().mean(dim=1)
    ...     batch_size = 4
    >>> scorer = StreamScorer(Energy(), window=1.0, hop=0.5)
    >>> rows = scorer.push(np.ones(20000, dtype=np.float32)) + scorer.close()
    >>> [(r.start, r.end, r.score) for r in rows]
    [(0.0, 1.0, 1.0), (0.25, 1.25, 1.0)]
    >>> scorer.push(np.ones(3, dtype=np.int16))
    Traceback (most recent call last):
    ...
    RuntimeError: push after close: the stream has ended
    """

    def __init__(self, detector, window=None, hop=None, sample_rate=SAMPLE_RATE, channels=1,
                 batch_size=None):
        self.detector = detector
        if window is None and getattr(detector, "window", None) is None:
            window = detector.max_samples / SAMPLE_RATE
        self.window, self.hop, _ = detector._resolve_windows(window, hop, None)
        if int(channels) != channels or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels}")
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.resampler = StreamResampler(self.sample_rate, SAMPLE_RATE)
        self.batch_size = int(batch_size or detector.batch_size)
        self.buffer = torch.zeros(0)
        self.buffer_start = 0  # sample index (16 kHz) of buffer[0]
        self.n_samples = 0  # 16 kHz samples received
        self.next_start = 0  # start of the next regular window
        self.closed = False

    def push(self, chunk, sample_rate=None):
        """Adds a chunk; returns the ``WindowScore`` of every window it completes.

        ``chunk``: float32 array or tensor, (frames,) for mono or
        (frames, channels). ``sample_rate``, when given, must be the
        stream's (a check against a source that changed its rate).
        """
        if self.closed:
            raise RuntimeError("push after close: the stream has ended")
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise ValueError(
                f"chunk at {sample_rate} Hz pushed to a {self.sample_rate} Hz stream; "
                "open one StreamScorer per sample rate"
            )
        chunk = _check_chunk(chunk, self.channels)
        check_finite(chunk, "the stream", offset=self.resampler.n_in)  # never a NaN score
        return self._add(self.resampler.push(torch.from_numpy(chunk.mean(axis=1))))

    def _add(self, samples):
        self.buffer = torch.cat([self.buffer, samples])
        self.n_samples += samples.shape[0]
        starts = []
        while self.next_start + self.window <= self.n_samples:
            starts.append(self.next_start)
            self.next_start += self.hop
        rows = self._score(starts)
        # Keep what the next regular window and a final end-aligned window need.
        keep_from = max(0, min(self.next_start, self.n_samples - self.window))
        self.buffer = self.buffer[keep_from - self.buffer_start :]
        self.buffer_start = keep_from
        return rows

    def _segment(self, start):
        return self.buffer[start - self.buffer_start : start - self.buffer_start + self.window]

    def _score(self, starts, tiled=False):
        rows = []
        for first in range(0, len(starts), self.batch_size):
            part = starts[first : first + self.batch_size]
            if tiled:
                batch = crop_or_tile(self.buffer, self.window)[None]
            else:
                batch = torch.stack([self._segment(start) for start in part])
            scores = self.detector.score_batch(batch, torch.ones(len(part))).tolist()
            for start, score in zip(part, scores):
                end = self.n_samples if tiled else start + self.window
                rows.append(WindowScore(start / SAMPLE_RATE, end / SAMPLE_RATE, float(score)))
        return rows

    def close(self):
        """Ends the stream; returns the scores of its last windows (see the
        module docstring). A stream with no samples is an error."""
        if self.closed:
            return []
        self.closed = True
        rows = self._add(self.resampler.flush())
        if self.n_samples == 0:
            raise ValueError("the stream ended before any audio arrived")
        if self.n_samples < self.window:
            return rows + self._score([0], tiled=True)
        last_start = self.next_start - self.hop
        if last_start + self.window < self.n_samples:
            rows += self._score([self.n_samples - self.window])
        return rows

    def scores(self, chunks):
        """Iterates over ``WindowScore``s of an iterable of chunks, each as soon as complete."""
        for chunk in chunks:
            yield from self.push(chunk)
        yield from self.close()


def score_file_windows(detector, path, window=None, hop=None, aggregation=None,
                       batch_size=None):
    """``DetectionResult`` of a file scored in windows, read block by block.

    The same windows and scores as ``detector.score_file(path, window, hop)``
    (up to float rounding), in memory that does not grow with the file.
    """

    aggregation = aggregation or detector.aggregation
    scorer = StreamScorer(detector, window, hop, batch_size=batch_size)
    rows = []
    for block in iter_blocks(path):
        rows += scorer._add(block)
    rows += scorer.close()
    scores = [row.score for row in rows]
    return DetectionResult(
        score=aggregate(scores, aggregation),
        window_scores=tuple(scores),
        window_starts=tuple(row.start for row in rows),
        duration=scorer.n_samples / SAMPLE_RATE,
    )


def read_scored_crop(path, n_samples, mode=DEFAULT_CROP):
    """The part of ``path`` that a detector without windows scores, decoding
    only that part (the whole file for ``mode="full"``).

    ``"random"`` crops are made deterministic (the first ``n_samples``) as
    ``SpoofDetector`` does.
    """

    if mode == "full":
        return read_audio(path)
    return crop_or_tile(read_head(path, n_samples), n_samples)


def with_file_duration(result, path):
    """``result`` with the duration of the whole file (read from its header)."""
    return replace(result, duration=audio_length(path) / SAMPLE_RATE)


# Files up to this long (16 kHz samples) are decoded whole and their windows
# batched with other files' (fast on many short files); longer ones are
# scored block by block (memory that does not grow with the file).
WHOLE_FILE_SAMPLES = 120 * SAMPLE_RATE


def read_unless_long(path, max_samples=None):
    """``read_audio(path)``, or None when the file is longer than ``max_samples``
    (``WHOLE_FILE_SAMPLES`` by default; then ``score_file_windows`` scores it
    block by block)."""

    if audio_length(path) > (WHOLE_FILE_SAMPLES if max_samples is None else max_samples):
        return None
    try:
        return read_audio(path)
    except RuntimeError:  # not soundfile's: decoded by PyAV, block by block
        return torch.cat(list(iter_blocks(path)))
