"""Codec round trips through PyAV (FFmpeg), in memory and delay-compensated.

SpeechBrain's ``CodecAugment`` needs ``torchaudio.io``, which torchaudio 2.9
removed; the ``av`` wheel bundles FFmpeg with the encoders used here. Frames
go straight through an encoder and a decoder context (no container, no file,
no subprocess). Narrowband codecs run at 8 kHz: the signal is resampled
there and back (``scipy.signal.resample_poly``, zero-phase). The output is
aligned to the input by the codec's delay, measured once per codec and
bitrate on a probe signal when the augmenter is built, and cut or padded to
the input's length.

Which encoders a PyAV wheel's FFmpeg carries changes between releases (one
release dropped ``libopencore_amrnb``), so the codecs a list names are looked
up in the installed build first (``missing_codecs``) and a missing one is
refused by name, with the PyAV version and what to do.
"""

import logging
from dataclasses import dataclass
from fractions import Fraction
from math import gcd

import av
import numpy as np
from scipy.signal import resample_poly

logger = logging.getLogger(__name__)
LOCK = "requirements/lock.txt"  # the versions the test suite passed on
MAX_DELAY = 4096  # samples searched for the codec delay, at the input rate
CHUNK = 4096  # samples per frame for codecs without a fixed frame size
BITRATE_TOLERANCE = 0.25  # measured vs requested, beyond which a bitrate is refused


@dataclass(frozen=True)
class CodecSpec:
    """How to run one codec: FFmpeg encoder/decoder, rate and sample format.

    ``bitrates`` lists the only bitrates the codec has (None: any in a range,
    checked against the bitrate it actually produces).
    """

    encoder: str
    decoder: str
    sample_rate: int
    sample_format: str
    bitrates: tuple = None


# MPEG-2 layer III (16 kHz) bitrates; AMR-NB modes; G.726 at 2-5 bits/sample.
CODECS = {
    "mp3": CodecSpec("libmp3lame", "mp3", 16000, "fltp",
                     (8000, 16000, 24000, 32000, 40000, 48000, 56000, 64000,
                      80000, 96000, 112000, 128000, 144000, 160000)),
    "aac": CodecSpec("aac", "aac", 16000, "fltp"),
    "opus": CodecSpec("libopus", "libopus", 16000, "flt"),
    "g722": CodecSpec("g722", "g722", 16000, "s16", (64000,)),
    "pcm_mulaw": CodecSpec("pcm_mulaw", "pcm_mulaw", 8000, "s16", (64000,)),
    "pcm_alaw": CodecSpec("pcm_alaw", "pcm_alaw", 8000, "s16", (64000,)),
    "amr_nb": CodecSpec("libopencore_amrnb", "amrnb", 8000, "s16",
                        (4750, 5150, 5900, 6700, 7400, 7950, 10200, 12200)),
    "adpcm_g726": CodecSpec("adpcm_g726", "g726", 8000, "s16", (16000, 24000, 32000, 40000)),
    "ac3": CodecSpec("ac3", "ac3", 32000, "fltp"),
}


def missing_codecs(names):
    """The FFmpeg encoders and decoders that the installed PyAV build lacks.

    Returns ``{codec: [what is missing, ...]}`` for the codecs of ``names``
    (keys of ``CODECS``) that cannot be both encoded and decoded; empty when
    every one can.

    Example
    -------
    >>> missing_codecs(["pcm_mulaw", "pcm_alaw"])
    {}
    """
    missing = {}
    for name in names:
        spec = CODECS[name]
        lacks = [
            f"{role} {codec_name}"
            for role, codec_name, mode in (("encoder", spec.encoder, "w"), ("decoder", spec.decoder, "r"))
            if not _has_codec(codec_name, mode)
        ]
        if lacks:
            missing[name] = lacks
    return missing


def _has_codec(codec_name, mode):
    try:
        av.Codec(codec_name, mode)
    except av.codec.codec.UnknownCodecError:
        return False
    return True


def check_codecs_available(names, option="codec.codecs"):
    """Raises, naming each codec of ``names`` that the installed FFmpeg build
    cannot run, the PyAV version and what to do.

    Example
    -------
    >>> check_codecs_available(["pcm_mulaw", "g722"])
    """
    missing = missing_codecs(names)
    if missing:
        lacking = "; ".join(f"{name} (no {' and no '.join(lacks)})" for name, lacks in missing.items())
        raise ValueError(
            f"{option}: the FFmpeg build of the installed PyAV {av.__version__} cannot run {lacking}. "
            f"Drop {', '.join(missing)} from {option}, or install the locked versions "
            f"(pip install --no-deps -r {LOCK})"
        )


def _resample(x, rate_in, rate_out):
    if rate_in == rate_out:
        return x
    common = gcd(rate_in, rate_out)
    return resample_poly(x, rate_out // common, rate_in // common)


def _encode(spec, x, bitrate):
    """Encodes float samples at the codec's rate; returns (packets, encoder)."""
    encoder = av.CodecContext.create(spec.encoder, "w")
    encoder.sample_rate = spec.sample_rate
    encoder.layout = "mono"
    encoder.format = spec.sample_format
    encoder.time_base = Fraction(1, spec.sample_rate)
    encoder.bit_rate = bitrate
    encoder.open()
    frame_size = encoder.frame_size or CHUNK
    padded = np.zeros(-(-x.shape[0] // frame_size) * frame_size, dtype=np.float32)
    padded[: x.shape[0]] = x
    if spec.sample_format.startswith("s16"):
        padded = np.round(np.clip(padded, -1, 1) * 32767).astype(np.int16)
    packets = []
    for start in range(0, padded.shape[0], frame_size):
        frame = av.AudioFrame.from_ndarray(
            padded[None, start : start + frame_size], format=spec.sample_format, layout="mono"
        )
        frame.sample_rate = spec.sample_rate
        frame.pts = start
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    return packets, encoder


def _decode(spec, packets, encoder, bitrate):
    """Decodes packets; returns a float array and its rate (the Opus
    decoder may answer at 48 kHz whatever it is asked)."""
    decoder = av.CodecContext.create(spec.decoder, "r")
    decoder.sample_rate = spec.sample_rate
    decoder.layout = "mono"
    if encoder.extradata:
        decoder.extradata = encoder.extradata
    if spec.decoder == "g726":  # raw G.726 carries no code size
        decoder.options = {"bits_per_coded_sample": str(bitrate // spec.sample_rate)}
    chunks, rate = [], spec.sample_rate
    for packet in [*packets, None]:
        for frame in decoder.decode(packet):
            rate = frame.sample_rate
            samples = frame.to_ndarray().reshape(-1)
            if samples.dtype == np.int16:
                samples = samples.astype(np.float32) / 32768
            chunks.append(samples)
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return samples, rate


def raw_round_trip(x, codec, bitrate, sample_rate, tail=0):
    """Encodes and decodes ``x`` (at ``sample_rate``); no delay compensation.

    ``tail`` zeros are appended first, so that the delayed output still
    covers the whole input. Returns (output, bits per second produced).
    """
    spec = CODECS[codec]
    x = np.concatenate([np.asarray(x, dtype=np.float64), np.zeros(tail)])
    at_codec_rate = _resample(x, sample_rate, spec.sample_rate).astype(np.float32)
    packets, encoder = _encode(spec, at_codec_rate, bitrate)
    decoded, decoded_rate = _decode(spec, packets, encoder, bitrate)
    seconds = at_codec_rate.shape[0] / spec.sample_rate
    produced = 8 * sum(packet.size for packet in packets) / seconds
    return _resample(decoded.astype(np.float64), decoded_rate, sample_rate), produced


def probe_signal(sample_rate, seconds=1.0):
    """Speech-band (300-3400 Hz) noise with a syllable-rate envelope: every
    codec here keeps it, so its cross-correlation peak gives the delay."""
    rng = np.random.default_rng(0)
    n = int(seconds * sample_rate)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    noise = np.fft.irfft(spectrum, n)
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * np.arange(n) / sample_rate)
    return 0.3 * noise * envelope / np.abs(noise).max()


def best_lag(reference, output, max_lag):
    """Lag in [-max_lag, max_lag] maximising the cross-correlation of
    ``output`` against ``reference`` (positive: output is late).

    Example
    -------
    >>> x = np.random.default_rng(0).standard_normal(1000)
    >>> best_lag(x, np.concatenate([np.zeros(7), x]), 20)
    7
    """
    n = reference.shape[0] + output.shape[0]
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(output, size) * np.conj(np.fft.rfft(reference, size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    return int(lags[np.argmax(corr[lags])])


def check_bitrate(codec, bitrate, option):
    """Raises if ``codec`` has a fixed set of bitrates without ``bitrate``."""
    spec = CODECS[codec]
    if isinstance(bitrate, bool) or not isinstance(bitrate, int) or bitrate <= 0:
        raise ValueError(f"{option}: bitrate must be a positive integer (bits/s), got {bitrate!r}")
    if spec.bitrates is not None and bitrate not in spec.bitrates:
        raise ValueError(
            f"{option}: {codec} refuses bitrate {bitrate}; it has {list(spec.bitrates)}"
        )


def measure_delay(codec, bitrate, sample_rate, option="codec"):
    """Round-trips the probe once: checks the codec accepts ``bitrate`` and
    returns its delay in samples at ``sample_rate`` (negative: the decoder
    skipped a little more than the encoder's look-ahead)."""
    check_bitrate(codec, bitrate, option)
    probe = probe_signal(sample_rate)
    try:
        output, produced = raw_round_trip(probe, codec, bitrate, sample_rate, tail=MAX_DELAY)
    except (av.FFmpegError, ValueError) as err:
        raise ValueError(f"{option}: {codec} at {bitrate} bit/s fails: {err}") from err
    if CODECS[codec].bitrates is None and abs(produced / bitrate - 1) > BITRATE_TOLERANCE:
        raise ValueError(
            f"{option}: {codec} refuses bitrate {bitrate}: it produces {produced:.0f} bit/s instead"
        )
    return best_lag(probe, output, MAX_DELAY)


class CodecRoundTrip:
    """Encodes and decodes an utterance with a codec and bitrate drawn at random.

    Arguments
    ---------
    codecs : dict
        Codec name (a key of ``CODECS``) -> list of bitrates (bit/s). The codec
        is drawn uniformly, then one of its bitrates.
    sample_rate : int
        Rate of the utterances.
    option : str
        Name of the option in error messages.

    Every pair is round-tripped once here, so a codec that is missing or
    refuses a bitrate fails at start-up, and its delay is measured.

    Example
    -------
    >>> codec = CodecRoundTrip({"pcm_mulaw": [64000]}, 16000)
    >>> x = probe_signal(16000)
    >>> codec(x, np.random.default_rng(0)).shape == x.shape
    True
    >>> CodecRoundTrip({"mp4": [64000]}, 16000)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: codec.codecs: unknown codec 'mp4'; known: aac, ac3, adpcm_g726, amr_nb, g722, mp3, opus, pcm_alaw,
    pcm_mulaw
    """

    def __init__(self, codecs, sample_rate=16000, option="codec.codecs"):
        if not isinstance(codecs, dict) or not codecs:
            raise ValueError(f"{option} must map codec names to lists of bitrates, got {codecs!r}")
        unknown = [codec for codec in codecs if codec not in CODECS]
        if unknown:
            raise ValueError(f"{option}: unknown codec {unknown[0]!r}; known: {', '.join(sorted(CODECS))}")
        check_codecs_available(codecs, option)
        self.sample_rate = sample_rate
        self.choices = []
        self.delays = {}
        for codec, bitrates in codecs.items():
            if bitrates is None:
                bitrates = list(CODECS[codec].bitrates or ())
            if isinstance(bitrates, int):
                bitrates = [bitrates]
            if not bitrates:
                raise ValueError(f"{option}.{codec}: give at least one bitrate")
            for bitrate in bitrates:
                self.delays[codec, bitrate] = measure_delay(
                    codec, bitrate, sample_rate, f"{option}.{codec}"
                )
            self.choices.append((codec, list(bitrates)))
        logger.info("codec delays (samples): %s", self.delays)

    def round_trip(self, x, codec, bitrate):
        """The delay-compensated round trip of ``x``, as long as ``x``."""
        delay = self.delays[codec, bitrate]
        output, _ = raw_round_trip(x, codec, bitrate, self.sample_rate, tail=max(delay, 0))
        if delay < 0:  # samples the decoder skipped: silence
            output = np.concatenate([np.zeros(-delay), output])
        output = output[max(delay, 0) : max(delay, 0) + x.shape[0]]
        if output.shape[0] < x.shape[0]:  # a decoder that drops its last samples
            output = np.pad(output, (0, x.shape[0] - output.shape[0]))
        return output

    def __call__(self, x, rng):
        """Round-trips ``x`` through a codec and bitrate drawn from ``rng``."""
        codec, bitrates = self.choices[rng.integers(len(self.choices))]
        return self.round_trip(np.asarray(x, dtype=np.float64), codec, bitrates[rng.integers(len(bitrates))])
