"""``python -m lobes.detect MODEL - --stream``: scores audio read from stdin as it arrives.

Standard input holds either a WAV stream (16-bit PCM; its header gives the
rate and channels, and a header written for a live stream, with an unknown
or oversized data length, is fine) or raw 16-bit little-endian PCM at
``--rate`` Hz with ``--channels`` interleaved channels. One CSV row per
window (``file,start,end,score,llr,posterior``, file ``stdin``) is printed,
and flushed, as soon as the window is complete; the last windows come when
the input ends (see ``lobes.inference.streaming`` for what is scored there).
An input that ends in the middle of a sample frame has its incomplete frame
(fewer than ``2 * channels`` bytes) dropped, with a note on stderr.
``--timeline``, ``--rttm`` and ``--json`` are written when the input ends.
"""

import sys
import wave

import numpy as np

from lobes.dataio.dataset import SAMPLE_RATE
from lobes.evaluation.timeline import TIMELINE_FIELDS, format_row, window_rows
from lobes.inference.scoring import DetectionResult, aggregate
from lobes.inference.streaming import StreamScorer
from lobes.inference.timeline_outputs import bona_fide_prior

STREAM_NAME = "stdin"
READ_SECONDS = 0.1  # input read per step: bounds the added latency


def open_pcm(stream, rate, channels):
    """``(read(n_frames) -> bytes, rate, channels)`` of a WAV or raw PCM byte stream."""
    head = stream.peek(12)[:12] if hasattr(stream, "peek") else b""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        try:
            reader = wave.open(stream, "rb")
        except (wave.Error, EOFError) as err:
            raise ValueError(f"standard input: not a readable WAV stream ({err})") from None
        if reader.getsampwidth() != 2:
            raise ValueError(
                f"standard input: WAV of {8 * reader.getsampwidth()}-bit samples; "
                "--stream reads 16-bit PCM"
            )
        return reader.readframes, reader.getframerate(), reader.getnchannels()
    if rate <= 0 or channels <= 0:
        raise ValueError(f"--rate and --channels must be positive, got {rate} and {channels}")
    return (lambda n: stream.read(n * 2 * channels)), rate, channels


def pcm_chunks(read, channels, frames):
    """Float32 (frames, channels) chunks of 16-bit PCM from ``read``; a
    trailing incomplete frame is dropped with a note on stderr."""
    frame_bytes = 2 * channels
    rest = b""
    while True:
        data = read(frames)
        if not data:
            break
        data = rest + data
        usable = len(data) - len(data) % frame_bytes
        rest = data[usable:]
        if usable:
            samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768
            yield samples.reshape(-1, channels)
    if rest:
        print(f"note: input ended inside a sample frame; dropped its last {len(rest)} bytes",
              file=sys.stderr)


def run_stream(args, detector, stream=None, out=None):
    """Scores stdin (or ``stream``), printing rows to stdout (or ``out``) as
    windows complete; returns the ``DetectionResult`` of the whole stream
    (windows aggregated with ``args.aggregation``)."""

    stream = stream if stream is not None else sys.stdin.buffer
    out = out if out is not None else sys.stdout
    read, rate, channels = open_pcm(stream, args.rate, args.channels)
    scorer = StreamScorer(detector, args.window, args.hop, sample_rate=rate, channels=channels,
                          batch_size=1)
    calibration = detector.calibration  # read with the model by its loader
    out.write(",".join(TIMELINE_FIELDS) + "\n")
    out.flush()
    windows = []
    for window in scorer.scores(pcm_chunks(read, channels, max(1, int(READ_SECONDS * rate)))):
        windows.append(window)
        single = DetectionResult(window.score, (window.score,), (window.start,), window.end)
        row = window_rows(STREAM_NAME, single, window.end - window.start, calibration, bona_fide_prior(args))[0]
        out.write(format_row(row, "csv"))
        out.flush()
    scores = [w.score for w in windows]
    return DetectionResult(aggregate(scores, args.aggregation), tuple(scores),
                           tuple(w.start for w in windows), scorer.n_samples / SAMPLE_RATE)

