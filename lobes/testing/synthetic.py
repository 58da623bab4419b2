"""Small synthetic corpora in the ASVspoof 2019 LA and ASVspoof 5 layouts, for demos and tests.

Bona fide "speech" is a harmonic source with a wandering pitch, moving
formant-like resonances, a syllabic amplitude envelope and fricative-like
noise bursts.
Each spoof is a vocoder-style resynthesis of a bona fide signal: the STFT
magnitude is kept, the phase is replaced (random or zero, by attack), the harmonic fine
structure above about 1 kHz is smoothed away and the band above 4 kHz
becomes stationary noise that ignores the speech rhythm, which is the kind of artefact real vocoders leave.
So spoofs share content with bona fide trials and differ only by the
artefact.
"""

import os

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
SPLIT_LETTERS = {"train": "T", "dev": "D", "eval": "E"}
PROTOCOL_SUFFIX = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}
ATTACKS = {"train": ("A01", "A02"), "dev": ("A01", "A02"), "eval": ("A07", "A08")}


def bonafide_signal(rng, seconds):
    """A speech-like harmonic signal with pitch, formant and loudness movement."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = rng.uniform(90, 220) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    formants = rng.uniform([400, 1100, 2400], [900, 1900, 3300])
    signal = np.zeros(n)
    for k in range(1, 40):
        freq = k * f0
        gain = sum(np.exp(-((freq - f) / 180.0) ** 2) for f in formants) + 0.02
        signal += gain / k**0.5 * np.sin(k * phase) * (freq < SAMPLE_RATE / 2)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6))
    bursts = np.clip(np.sin(2 * np.pi * rng.uniform(1, 4) * t + rng.uniform(0, 6)), 0, None) ** 4
    signal = signal * envelope + 0.05 * bursts * rng.standard_normal(n)
    return (0.3 * signal / np.abs(signal).max()).astype(np.float32)


def vocoder_resynthesis(signal, rng, attack_index, n_fft=512, hop=128):
    """Resynthesises from a smoothed STFT magnitude with a replaced phase."""
    window = np.hanning(n_fft)
    n_frames = 1 + (len(signal) - n_fft) // hop
    frames = np.stack([signal[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
    magnitude = np.abs(np.fft.rfft(frames, axis=1))
    # A mel-like vocoder input loses the harmonic fine structure above about
    # 1 kHz, and band-limited synthesis leaves little energy above 4 kHz.
    smooth_from = magnitude.shape[1] // 8
    kernel = np.ones(9) / 9
    for row in magnitude:
        row[smooth_from:] = np.convolve(row, kernel, mode="same")[smooth_from:]
    # Above 4 kHz the vocoder's noise excitation ignores the speech rhythm.
    high = magnitude.shape[1] // 2
    magnitude[:, high:] = magnitude[:, high:].mean()
    if attack_index % 2 == 0:
        phase = rng.uniform(-np.pi, np.pi, magnitude.shape)
    else:
        phase = np.zeros_like(magnitude)
    frames = np.fft.irfft(magnitude * np.exp(1j * phase), n=n_fft, axis=1) * window
    out = np.zeros(len(signal))
    norm = np.zeros(len(signal))
    for i, frame in enumerate(frames):
        out[i * hop : i * hop + n_fft] += frame
        norm[i * hop : i * hop + n_fft] += window**2
    out /= np.maximum(norm, 1e-3)
    return (0.3 * out / max(np.abs(out).max(), 1e-6)).astype(np.float32)


def make_synthetic_la(folder, n_bonafide=None, n_spoof=None, seconds=(2.0, 5.0), seed=0, asv_scores=True):
    """Writes a synthetic ASVspoof 2019 LA tree under ``folder/LA``.

    Arguments
    ---------
    folder : str
        Destination; ``folder/LA`` is created.
    n_bonafide, n_spoof : dict
        Trials per split, e.g. ``{"train": 40, "dev": 20, "eval": 20}``.
    seconds : tuple
        Range of utterance durations.
    seed : int
        Everything is reproducible from it.
    asv_scores : bool
        Also write organisers'-style ASV score files for dev and eval.

    Returns
    -------
    dict
        Split -> number of trials written.

    Example
    -------
    >>> counts = make_synthetic_la(getfixture("tmp_path"), {"train": 2, "dev": 1, "eval": 1},
    ...                            {"train": 2, "dev": 1, "eval": 1}, seconds=(0.5, 0.6))
    >>> counts
    {'train': 4, 'dev': 2, 'eval': 2}
    """
    n_bonafide = n_bonafide or {"train": 60, "dev": 30, "eval": 30}
    n_spoof = n_spoof or {"train": 60, "dev": 30, "eval": 30}
    rng = np.random.default_rng(seed)
    root = os.path.join(str(folder), "LA")
    protocol_dir = os.path.join(root, "ASVspoof2019_LA_cm_protocols")
    os.makedirs(protocol_dir, exist_ok=True)
    counts = {}
    for split, letter in SPLIT_LETTERS.items():
        audio_dir = os.path.join(root, f"ASVspoof2019_LA_{split}", "flac")
        os.makedirs(audio_dir, exist_ok=True)
        lines = []
        n_total = n_bonafide[split] + n_spoof[split]
        ids = rng.choice(10**7, size=n_total, replace=False)
        for index, number in enumerate(ids):
            utt_id = f"LA_{letter}_{number:07d}"
            speaker = f"LA_{rng.integers(0, 20):04d}"
            signal = bonafide_signal(rng, rng.uniform(*seconds))
            if index < n_bonafide[split]:
                attack, key = "-", "bonafide"
            else:
                attack_index = index % len(ATTACKS[split])
                attack, key = ATTACKS[split][attack_index], "spoof"
                signal = vocoder_resynthesis(signal, rng, attack_index)
            sf.write(os.path.join(audio_dir, f"{utt_id}.flac"), signal, SAMPLE_RATE)
            lines.append(f"{speaker} {utt_id} - {attack} {key}\n")
        order = rng.permutation(len(lines))  # the real eval protocol is shuffled
        with open(
            os.path.join(protocol_dir, f"ASVspoof2019.LA.cm.{PROTOCOL_SUFFIX[split]}.txt"),
            "w",
            encoding="utf-8",
        ) as fout:
            fout.writelines(lines[i] for i in order)
        counts[split] = n_total
    if asv_scores:
        _write_asv_scores(root, rng)
    return counts


def _write_asv_scores(root, rng):
    """ASV scores in the organisers' format: ``CM_KEY ASV_KEY SCORE``."""
    folder = os.path.join(root, "ASVspoof2019_LA_asv_scores")
    os.makedirs(folder, exist_ok=True)
    for split, attack in (("dev", "A01"), ("eval", "A07")):
        rows = [("bonafide", "target", s) for s in rng.normal(3, 1, 50)]
        rows += [("bonafide", "nontarget", s) for s in rng.normal(-3, 1, 50)]
        rows += [(attack, "spoof", s) for s in rng.normal(1, 1.5, 50)]
        path = os.path.join(folder, f"ASVspoof2019.LA.asv.{split}.gi.trl.scores.txt")
        with open(path, "w", encoding="utf-8") as fout:
            fout.writelines(f"{cm} {asv} {score:.4f}\n" for cm, asv, score in rows)


ASVSPOOF5_SPLITS = {"train": ("T", "flac_T"), "dev": ("D", "flac_D"), "eval": ("E", "flac_E_eval")}
ASVSPOOF5_ATTACKS = {"train": ("A01", "A02"), "dev": ("A09", "A10"), "eval": ("A17", "A18")}
ASVSPOOF5_PROTOCOLS = {
    "tsv": {
        "train": "ASVspoof5.train.tsv",
        "dev": "ASVspoof5.dev.track_1.tsv",
        "eval": "ASVspoof5.eval.track_1.tsv",
    },
    "metadata": {
        "train": "ASVspoof5.train.metadata.txt",
        "dev": "ASVspoof5.dev.metadata.txt",
        "eval": "ASVspoof5.eval.metadata.txt",
    },
}


def make_synthetic_asvspoof5(
    folder, n_bonafide=None, n_spoof=None, seconds=(2.0, 5.0), seed=0, protocol_form="tsv",
    splits=("train", "dev", "eval"),
):
    """Writes a synthetic ASVspoof 5 (Track 1) tree under ``folder``.

    Layout as released: ``flac_T/``, ``flac_D/``, ``flac_E_eval/`` with
    ``{T,D,E}_##########.flac`` and the protocols beside them, either the
    10-column ``.tsv`` files (``protocol_form="tsv"``) or the challenge
    phase's 6-column ``*.metadata.txt`` (``"metadata"``). Eval rows of the
    ``.tsv`` form carry codecs (``C01``, ``C02`` or ``-``, in the metadata
    only: the audio is not coded).

    Returns
    -------
    dict
        Split -> number of trials written.

    Example
    -------
    >>> counts = make_synthetic_asvspoof5(getfixture("tmp_path"), {"train": 2, "dev": 1, "eval": 1},
    ...                                   {"train": 2, "dev": 1, "eval": 2}, seconds=(0.5, 0.6))
    >>> counts
    {'train': 4, 'dev': 2, 'eval': 3}
    """
    if protocol_form not in ASVSPOOF5_PROTOCOLS:
        raise ValueError(f"protocol_form must be one of {sorted(ASVSPOOF5_PROTOCOLS)}")
    n_bonafide = n_bonafide or {"train": 60, "dev": 30, "eval": 30}
    n_spoof = n_spoof or {"train": 60, "dev": 30, "eval": 30}
    rng = np.random.default_rng(seed)
    os.makedirs(str(folder), exist_ok=True)
    counts = {}
    for split in splits:
        letter, audio_name = ASVSPOOF5_SPLITS[split]
        audio_dir = os.path.join(str(folder), audio_name)
        os.makedirs(audio_dir, exist_ok=True)
        lines = []
        n_total = n_bonafide[split] + n_spoof[split]
        for index, number in enumerate(rng.choice(10**10, size=n_total, replace=False)):
            utt_id = f"{letter}_{number:010d}"
            speaker = f"{letter}_{rng.integers(0, 20):04d}"
            gender = "FM"[index % 2]
            signal = bonafide_signal(rng, rng.uniform(*seconds))
            if index < n_bonafide[split]:
                tag, attack, key = "-", "bonafide", "bonafide"
            else:
                attack_index = index % 2
                tag, attack, key = f"AC{attack_index + 1}", ASVSPOOF5_ATTACKS[split][attack_index], "spoof"
                signal = vocoder_resynthesis(signal, rng, attack_index)
            sf.write(os.path.join(audio_dir, f"{utt_id}.flac"), signal, SAMPLE_RATE)
            if protocol_form == "metadata":
                lines.append(f"{speaker} {utt_id} {gender} - {attack if key == 'spoof' else '-'} {key}\n")
                continue
            codec = ("-", "C01", "C02")[index % 3] if split == "eval" else "-"
            quality, codec_seed = ("-", "-") if codec == "-" else (str(1 + index % 8), str(index))
            lines.append(
                f"{speaker} {utt_id} {gender} {codec} {quality} {codec_seed} {tag} {attack} {key} -\n"
            )
        order = rng.permutation(len(lines))
        path = os.path.join(str(folder), ASVSPOOF5_PROTOCOLS[protocol_form][split])
        with open(path, "w", encoding="utf-8") as fout:
            fout.writelines(lines[i] for i in order)
        counts[split] = n_total
    return counts
