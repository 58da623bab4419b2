"""Reading audio block by block: mixed down and resampled as it comes.

``read_audio`` (lobes.inference.detector) decodes a whole file, then mixes down and
resamples it: a 30-minute 48 kHz stereo file costs gigabytes. Here a file is
read in soundfile blocks; each block is averaged over its channels and pushed
through ``StreamResampler``, which gives the same samples as resampling the
whole signal at once (up to float rounding), so the block path and the
whole-file path score the same audio.

Why a resampler of our own: ``torchaudio.functional.resample`` works on a
whole signal and ``torchaudio.transforms.Resample`` has no state between
calls. Its polyphase kernel only looks a fixed number of input samples either
side of each output sample, so resampling a block together with enough
context of the previous and next blocks, and keeping only the outputs whose
inputs all lie inside, reproduces the whole-signal result. The class below
only does that book-keeping; torchaudio still does the resampling.
"""

import math

import numpy as np
import soundfile as sf
import torch
import torchaudio

from lobes.dataio.audio_checks import check_finite
from lobes.dataio.dataset import SAMPLE_RATE

BLOCK_SECONDS = 10.0
# torchaudio's default sinc kernel (lowpass_filter_width=6, rolloff=0.99)
# reaches ceil(6 * orig / (0.99 * min(orig, new))) input samples either side
# (in gcd-reduced units); a slightly wider bound costs nothing but a little
# recomputation and does not depend on torchaudio's private helpers.
_KERNEL_REACH = 6.2


class StreamResampler:
    """Resamples a 1-D signal pushed in chunks, as one whole-signal call would.

    ``push(chunk)`` returns the output samples that are final so far;
    ``flush()`` returns the rest once the signal has ended. Concatenated, the
    outputs equal ``torchaudio.functional.resample(whole, orig, new)`` (to
    float rounding: the convolution runs on pieces).

    Example
    -------
    >>> x = torch.randn(48000)
    >>> resampler = StreamResampler(48000, 16000)
    >>> pieces = [resampler.push(part) for part in x.split(7001)] + [resampler.flush()]
    >>> whole = torchaudio.functional.resample(x, 48000, 16000)
    >>> bool(torch.allclose(torch.cat(pieces), whole, atol=1e-6)), whole.shape[0]
    (True, 16000)
    """

    def __init__(self, orig_freq, new_freq):
        if int(orig_freq) != orig_freq or int(new_freq) != new_freq or orig_freq <= 0 or new_freq <= 0:
            raise ValueError(f"sample rates must be positive integers, got {orig_freq} and {new_freq}")
        self.orig_freq, self.new_freq = int(orig_freq), int(new_freq)
        gcd = math.gcd(self.orig_freq, self.new_freq)
        self.orig, self.new = self.orig_freq // gcd, self.new_freq // gcd
        reach = math.ceil(_KERNEL_REACH * self.orig / min(self.orig, self.new)) + 1
        # Context either side, a whole number of input periods so that the
        # phase of the kernel stays aligned with the whole-signal call.
        self.context = math.ceil(reach / self.orig) * self.orig
        self.buffer = torch.zeros(0)
        self.buffer_start = 0  # input index of buffer[0]
        self.n_in = 0  # input samples pushed
        self.next_period = 0  # first input period whose outputs are not returned yet
        self.finished = False

    def _resample_periods(self, first, last, at_end=False):
        """Outputs of input periods [first, last), from the buffer."""
        begin = max(0, first * self.orig - self.context)
        stop = self.n_in if at_end else last * self.orig + self.context
        piece = self.buffer[begin - self.buffer_start : stop - self.buffer_start]
        out = torchaudio.functional.resample(piece, self.orig_freq, self.new_freq)
        offset = (first * self.orig - begin) // self.orig * self.new
        return out[offset:] if at_end else out[offset : offset + (last - first) * self.new]

    def push(self, chunk):
        """Adds mono float samples; returns the output samples now final."""
        if self.finished:
            raise RuntimeError("push after flush: the stream has ended")
        chunk = torch.as_tensor(chunk, dtype=torch.float32).reshape(-1)
        if self.orig_freq == self.new_freq:
            self.n_in += chunk.shape[0]
            return chunk
        self.buffer = torch.cat([self.buffer, chunk])
        self.n_in += chunk.shape[0]
        last = (self.n_in - self.context) // self.orig
        if last <= self.next_period:
            return torch.zeros(0)
        out = self._resample_periods(self.next_period, last)
        self.next_period = last
        self._trim()
        return out

    def _trim(self):
        keep_from = max(0, self.next_period * self.orig - self.context)
        self.buffer = self.buffer[keep_from - self.buffer_start :].clone()
        self.buffer_start = keep_from

    def flush(self):
        """The remaining output samples; the stream is over after this."""
        self.finished = True
        if self.orig_freq == self.new_freq or self.n_in == 0:
            return torch.zeros(0)
        return self._resample_periods(self.next_period, None, at_end=True)

    def output_length(self, n_in):
        """Output samples for ``n_in`` input samples (as torchaudio counts them)."""
        if self.orig_freq == self.new_freq:
            return n_in
        return math.ceil(self.new * n_in / self.orig)


def mix_down(block):
    """(frames, channels) float32 -> mono, averaged as ``read_audio`` does."""
    return torch.from_numpy(np.ascontiguousarray(block.mean(axis=1)))


def open_audio(path):
    """``soundfile.SoundFile`` of ``path``; errors name the file."""
    try:
        return sf.SoundFile(str(path))
    except Exception as err:  # soundfile raises several types for bad files
        raise RuntimeError(f"cannot read audio file {path}: {err}") from err


def _pyav_source(path, block_seconds):
    """``(rate, blocks)`` of a file that soundfile cannot read (AAC, Opus in
    WebM, ...), decoded by PyAV (FFmpeg); blocks are (frames, channels)
    float32 arrays of about ``block_seconds``. Errors name the file."""
    import av

    try:
        container = av.open(str(path))
        stream = container.streams.audio[0]
    except (av.error.FFmpegError, IndexError, OSError) as err:
        raise RuntimeError(f"cannot read audio file {path}: {err or 'no audio stream'}") from err
    rate = stream.rate

    def blocks():
        # Planar float whatever the codec's own sample format.
        converter = av.AudioResampler(format="fltp")
        pending, held = [], 0
        with container:
            try:
                for frame in container.decode(stream):
                    for out in converter.resample(frame):
                        pending.append(out.to_ndarray().T)
                        held += pending[-1].shape[0]
                    if held >= block_seconds * rate:
                        yield np.concatenate(pending).astype(np.float32, copy=False)
                        pending, held = [], 0
            except av.error.FFmpegError as err:
                raise RuntimeError(f"cannot decode audio file {path}: {err}") from err
        if pending:
            yield np.concatenate(pending).astype(np.float32, copy=False)

    return rate, blocks()


def _source(path, block_seconds):
    """``(rate, blocks)``: soundfile blocks, or PyAV's when soundfile cannot open the file."""
    try:
        audio = open_audio(path)
    except RuntimeError as sf_error:
        try:
            return _pyav_source(path, block_seconds)
        except RuntimeError:
            raise sf_error from None

    def blocks():
        with audio:
            block_frames = max(1, int(block_seconds * audio.samplerate))
            yield from audio.blocks(blocksize=block_frames, dtype="float32", always_2d=True)

    return audio.samplerate, blocks()


def audio_length(path, sample_rate=SAMPLE_RATE):
    """Number of samples of ``path`` once resampled to ``sample_rate`` (header only).

    For a file that only PyAV reads, the container's stated duration
    (approximate: codecs pad and prime).

    Example
    -------
    >>> path = getfixture("tmp_path") / "a.wav"
    >>> sf.write(path, np.zeros((4410, 2)), 44100)
    >>> audio_length(path)
    1600
    """
    try:
        with open_audio(path) as audio:
            return StreamResampler(audio.samplerate, sample_rate).output_length(audio.frames)
    except RuntimeError as sf_error:
        import av

        try:
            with av.open(str(path)) as container:
                return math.ceil(container.duration / av.time_base * sample_rate)
        except (av.error.FFmpegError, OSError, TypeError):
            raise sf_error from None


def iter_blocks(path, sample_rate=SAMPLE_RATE, block_seconds=BLOCK_SECONDS, stop=None):
    """Yields mono float32 blocks of ``path`` at ``sample_rate``, in order.

    soundfile reads the file; formats it cannot read (AAC/M4A, Opus in WebM,
    ...) are decoded by PyAV.

    Concatenated, the blocks equal ``read_audio(path)`` (exactly at the
    model's rate, to float rounding when resampled). Only one block (plus a
    few samples of resampling context) is held at a time. ``stop`` (samples
    at ``sample_rate``) ends the reading once that many samples are out, so
    a crop decodes only its own part of the file. Errors name the file.

    Example
    -------
    >>> path = getfixture("tmp_path") / "stereo.wav"
    >>> sf.write(path, np.ones((8000, 2)) * [0.2, 0.4], 8000)
    >>> blocks = list(iter_blocks(path, block_seconds=0.3))  # 0.3 s of 8 kHz -> 4800 samples
    >>> [b.shape[0] for b in blocks], round(float(torch.cat(blocks)[8000]), 4)
    ([4784, 4800, 4800, 1600, 16], 0.3)
    """
    n_out = 0
    rate, blocks = _source(path, block_seconds)
    resampler = StreamResampler(rate, sample_rate)
    try:
        for block in blocks:
            # A NaN file would score NaN and be called spoof: an error naming it.
            check_finite(block, path, offset=resampler.n_in)
            out = resampler.push(mix_down(block))
            if out.shape[0]:
                n_out += out.shape[0]
                yield out
            if stop is not None and n_out >= stop:
                blocks.close()
                return
        rest = resampler.flush()
    except RuntimeError as err:
        if str(path) in str(err):  # already names the file
            raise
        raise RuntimeError(f"cannot read audio file {path}: {err}") from err
    if resampler.n_in == 0:
        raise ValueError(f"{path} holds no samples")
    if rest.shape[0]:
        yield rest


def read_head(path, n_samples, sample_rate=SAMPLE_RATE):
    """The first ``n_samples`` of ``path`` at ``sample_rate`` (fewer if shorter),
    decoding only about that much of the file.

    Example
    -------
    >>> path = getfixture("tmp_path") / "a.wav"
    >>> sf.write(path, np.random.default_rng(0).uniform(-1, 1, (48000, 2)), 44100)
    >>> from lobes.inference.detector import read_audio
    >>> head = read_head(path, 5000)
    >>> head.shape[0], bool(torch.allclose(head, read_audio(path)[:5000], atol=1e-6))
    (5000, True)
    """
    blocks, total = [], 0
    block_seconds = min(BLOCK_SECONDS, n_samples / sample_rate + 1.0)
    for block in iter_blocks(path, sample_rate, block_seconds, stop=n_samples):
        blocks.append(block[: n_samples - total])
        total += blocks[-1].shape[0]
        if total >= n_samples:
            break
    return torch.cat(blocks)
