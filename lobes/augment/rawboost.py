"""RawBoost (Tak et al., ICASSP 2022): raw-waveform boosting for anti-spoofing.

Written from the paper's description, with the mode numbering of the public
SSL-AASIST code:

- algorithm 1, linear and non-linear convolutive noise (LnL): the sum over
  orders ``k = 1..N_f`` of ``x**k`` filtered by a random multi-band notch FIR
  filter, then mean-removed and peak-limited to 1;
- algorithm 2, impulsive signal-dependent noise (ISD): up to ``P`` % of the
  samples, chosen at random, get ``g_sd * x * u1 * u2`` added
  (``u1, u2`` uniform in [-1, 1]), then peak-limited to 1;
- algorithm 3, stationary signal-independent noise (SSI): white Gaussian
  noise coloured by a random notch filter, added at an SNR drawn from
  [``SNRmin``, ``SNRmax``] dB.

No library implements it (SpeechBrain has no RawBoost), hence this module. It
works in the frequency domain: all orders of algorithm 1 share one inverse
FFT, which is what makes it fast enough for DataLoader workers (see
``benchmarks/augment.py``). Two small departures from the public code: the
FIR group delay is removed exactly (the public code is one sample early), and
the filter gain is normalised on the FFT grid instead of 512 ``freqz`` points.
"""

import numpy as np
from scipy import fft as sp_fft
from scipy.signal import firwin

# The published defaults (parameter names as in the public code and papers).
DEFAULTS = {
    "nBands": 5,
    "minF": 20.0,
    "maxF": 8000.0,
    "minBW": 100.0,
    "maxBW": 1000.0,
    "minCoeff": 10,
    "maxCoeff": 100,
    "minG": 0.0,
    "maxG": 0.0,
    "minBiasLinNonLin": 5.0,
    "maxBiasLinNonLin": 20.0,
    "N_f": 5,
    "P": 10.0,
    "g_sd": 2.0,
    "SNRmin": 10.0,
    "SNRmax": 40.0,
}

# Mode -> algorithms applied in series; mode 8 runs 1 and 2 in parallel.
MODES = {
    0: (),
    1: ("lnl",),
    2: ("isd",),
    3: ("ssi",),
    4: ("lnl", "isd", "ssi"),
    5: ("lnl", "isd"),
    6: ("lnl", "ssi"),
    7: ("isd", "ssi"),
    8: ("lnl", "isd"),  # parallel: LnL(x) + ISD(x), then peak-normalised
}
PARALLEL_MODES = frozenset({8})
RANGES = (
    ("minF", "maxF"),
    ("minBW", "maxBW"),
    ("minCoeff", "maxCoeff"),
    ("minG", "maxG"),
    ("SNRmin", "SNRmax"),
)


def check_params(params, sample_rate, option="rawboost"):
    """Merges ``params`` over ``DEFAULTS`` and validates them.

    ``maxF`` is clamped below the Nyquist frequency. Errors name the option.

    Example
    -------
    >>> check_params({"nBands": 3}, 16000)["nBands"]
    3
    >>> check_params({"nbands": 3}, 16000)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: rawboost.nbands is not a RawBoost parameter; known: N_f, P, SNRmax, SNRmin, g_sd, maxBW,
    maxBiasLinNonLin, maxCoeff, maxF, maxG, minBW, minBiasLinNonLin, minCoeff, minF, minG, nBands
    """
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"{option}.{unknown[0]} is not a RawBoost parameter; known: {', '.join(sorted(DEFAULTS))}"
        )
    merged = dict(DEFAULTS)
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{option}.{name} must be a number, got {value!r}")
        merged[name] = value
    for name in ("nBands", "N_f", "minCoeff", "maxCoeff"):
        if int(merged[name]) != merged[name] or merged[name] < 1:
            raise ValueError(f"{option}.{name} must be a positive integer, got {merged[name]!r}")
        merged[name] = int(merged[name])
    for low, high in RANGES:
        if merged[low] > merged[high]:
            raise ValueError(f"{option}.{low} ({merged[low]}) exceeds {option}.{high} ({merged[high]})")
    if merged["minF"] < 0 or merged["minBW"] <= 0:
        raise ValueError(f"{option}.minF must be >= 0 and {option}.minBW > 0")
    if not 0 <= merged["P"] <= 100:
        raise ValueError(f"{option}.P is a percentage of samples, got {merged['P']}")
    if merged["g_sd"] < 0:
        raise ValueError(f"{option}.g_sd must be >= 0, got {merged['g_sd']}")
    nyquist = sample_rate / 2
    if merged["minF"] >= nyquist:
        raise ValueError(f"{option}.minF ({merged['minF']}) is not below Nyquist ({nyquist} Hz)")
    merged["maxF"] = min(merged["maxF"], nyquist)
    return merged


def max_filter_length(params):
    """Longest notch filter the parameters can draw (taps), for length checks.

    Example
    -------
    >>> max_filter_length(DEFAULTS)  # 5 bands of at most 99 taps
    491
    """
    # int(uniform(minCoeff, maxCoeff)) draws up to maxCoeff - 1 taps.
    top = max(params["minCoeff"], params["maxCoeff"] - 1)
    longest_band = max(_odd(c) for c in range(params["minCoeff"], top + 1))
    return params["nBands"] * (longest_band - 1) + 1


def _odd(n_taps):
    # Band-stop FIR filters need an odd number of taps.
    return n_taps + 1 if n_taps % 2 == 0 else n_taps


def _peak_limit(x):
    """Scales ``x`` to a peak of 1 when it exceeds 1 (the paper's normWav)."""
    peak = np.max(np.abs(x)) if x.size else 0.0
    return x / peak if peak > 1 else x


def notch_filter(rng, params, sample_rate, min_gain=None, max_gain=None):
    """Random multi-band notch FIR filter: ``nBands`` band-stop filters in series.

    Each band has a centre in [minF, maxF], a width in [minBW, maxBW] and
    [minCoeff, maxCoeff) taps (made odd). Returns the taps and the gain in dB
    (drawn from [min_gain, max_gain], by default [minG, maxG]), which
    ``_spectra`` applies after normalising the peak response to 1.
    """
    nyquist = sample_rate / 2
    taps = np.ones(1)
    for _ in range(params["nBands"]):
        centre = rng.uniform(params["minF"], params["maxF"])
        width = rng.uniform(params["minBW"], params["maxBW"])
        n_taps = _odd(int(rng.uniform(params["minCoeff"], params["maxCoeff"])))
        low = max(centre - width / 2, 1e-3)
        high = min(centre + width / 2, nyquist - 1e-3)
        band = firwin(n_taps, [low, high], window="hamming", fs=sample_rate)
        taps = np.convolve(taps, band)
    low_gain = params["minG"] if min_gain is None else min_gain
    high_gain = params["maxG"] if max_gain is None else max_gain
    # The higher orders' range is [minG - 5, maxG - 20] dB by default, i.e.
    # given high end first: draw between the two ends in either order.
    return taps, low_gain + (high_gain - low_gain) * rng.random()


def _spectra(filters, n_fft):
    """Gain-normalised spectra of linear-phase filters, centre-aligned so that
    they all share one group delay; returns (spectra, delay in samples)."""
    longest = max(len(taps) for taps, _ in filters)
    stacked = np.zeros((len(filters), longest))
    for row, (taps, _) in zip(stacked, filters):
        offset = (longest - len(taps)) // 2
        row[offset : offset + len(taps)] = taps
    spectra = sp_fft.rfft(stacked, n_fft, axis=-1)
    peaks = np.abs(spectra).max(axis=-1, keepdims=True)
    gains = np.array([10 ** (gain / 20) for _, gain in filters])[:, None]
    return spectra * gains / np.maximum(peaks, 1e-12), (longest - 1) // 2


def _check_length(x, params, algorithm):
    longest = max_filter_length(params)
    if x.shape[-1] < longest:
        raise ValueError(
            f"RawBoost {algorithm}: the clip has {x.shape[-1]} samples, shorter than the "
            f"longest notch filter ({longest} taps from rawboost.nBands x rawboost.maxCoeff)"
        )


def lnl_convolutive_noise(x, rng, params, sample_rate):
    """Algorithm 1: sum of notch-filtered powers ``x**1..x**N_f``.

    The first order keeps the gain range [minG, maxG]; higher orders are
    attenuated by [minBiasLinNonLin, maxBiasLinNonLin] dB more.
    """
    _check_length(x, params, "algorithm 1")
    filters = [notch_filter(rng, params, sample_rate)]
    for _ in range(1, params["N_f"]):
        filters.append(
            notch_filter(
                rng, params, sample_rate,
                min_gain=params["minG"] - params["minBiasLinNonLin"],
                max_gain=params["maxG"] - params["maxBiasLinNonLin"],
            )
        )
    n = x.shape[-1]
    longest = max(len(taps) for taps, _ in filters)
    n_fft = sp_fft.next_fast_len(n + longest - 1, real=True)
    spectra, delay = _spectra(filters, n_fft)
    powers = x[None, :] ** np.arange(1, params["N_f"] + 1)[:, None]
    mixed = (sp_fft.rfft(powers, n_fft, axis=-1) * spectra).sum(axis=0)
    y = sp_fft.irfft(mixed, n_fft)[delay : delay + n]
    return _peak_limit(y - y.mean())


def isd_additive_noise(x, rng, params):
    """Algorithm 2: impulsive noise on a random ``beta`` in [0, P] % of samples."""
    n = x.shape[-1]
    beta = rng.uniform(0, params["P"])
    n_changed = int(n * beta / 100)
    where = rng.choice(n, n_changed, replace=False)
    shape = (2 * rng.random(n_changed) - 1) * (2 * rng.random(n_changed) - 1)
    y = x.copy()
    y[where] += params["g_sd"] * x[where] * shape
    return _peak_limit(y)


def ssi_additive_noise(x, rng, params, sample_rate):
    """Algorithm 3: coloured Gaussian noise at an SNR in [SNRmin, SNRmax] dB.

    The noise is white noise filtered (circularly, which leaves stationary
    noise statistically unchanged) by a random notch filter.
    """
    _check_length(x, params, "algorithm 3")
    n = x.shape[-1]
    n_fft = sp_fft.next_fast_len(n, real=True)
    spectra, _ = _spectra([notch_filter(rng, params, sample_rate)], n_fft)
    white = rng.standard_normal(n_fft)
    noise = sp_fft.irfft(sp_fft.rfft(white) * spectra[0], n_fft)[:n]
    snr = rng.uniform(params["SNRmin"], params["SNRmax"])
    noise_norm = np.linalg.norm(noise)
    scale = np.linalg.norm(x) / (10 ** (snr / 20)) / max(noise_norm, 1e-12)
    return x + scale * noise


def apply_algorithm(name, x, rng, params, sample_rate):
    """Runs one algorithm by name: ``"lnl"``, ``"isd"`` or ``"ssi"``."""
    if name == "lnl":
        return lnl_convolutive_noise(x, rng, params, sample_rate)
    if name == "isd":
        return isd_additive_noise(x, rng, params)
    return ssi_additive_noise(x, rng, params, sample_rate)


class RawBoost:
    """RawBoost in one of the modes 0-8, as a per-utterance augmentation.

    Arguments
    ---------
    mode : int
        0 none; 1, 2, 3 one algorithm; 4 series 1-2-3; 5 series 1-2;
        6 series 1-3; 7 series 2-3; 8 parallel 1 + 2 (summed, peak-normalised).
    sample_rate : int
    **params
        Overrides of ``DEFAULTS`` (the published values).

    The output is peak-limited to 1 (the public code limits after algorithms
    1 and 2 only; this also covers modes ending with algorithm 3).

    Example
    -------
    >>> boost = RawBoost(mode=5, sample_rate=16000)
    >>> x = np.random.default_rng(0).uniform(-0.5, 0.5, 16000)
    >>> y = boost(x, np.random.default_rng(1))
    >>> y.shape, bool(np.abs(y).max() <= 1)
    ((16000,), True)
    >>> np.array_equal(y, boost(x, np.random.default_rng(1)))
    True
    """

    def __init__(self, mode=5, sample_rate=16000, option="rawboost", **params):
        if isinstance(mode, bool) or mode not in MODES:
            raise ValueError(f"{option}.mode must be one of {sorted(MODES)}, got {mode!r}")
        self.mode = mode
        self.sample_rate = sample_rate
        self.params = check_params(params, sample_rate, option)

    @property
    def min_samples(self):
        """Shortest clip this mode accepts (its notch filters must fit)."""
        filtered = {"lnl", "ssi"} & set(MODES[self.mode])
        return max_filter_length(self.params) if filtered else 1

    def __call__(self, x, rng):
        """Augments a 1-D float array with the draws of ``rng``."""
        x = np.asarray(x, dtype=np.float64)
        steps = MODES[self.mode]
        if self.mode in PARALLEL_MODES:
            y = sum(apply_algorithm(name, x, rng, self.params, self.sample_rate) for name in steps)
            return _peak_limit(y)
        for name in steps:
            x = apply_algorithm(name, x, rng, self.params, self.sample_rate)
        return _peak_limit(x)
