"""A tiny synthetic corpus in the PartialSpoof layout, for tests and demos.

Bona fide ``LA_*`` utterances are the speech-like signals of
``lobes.testing.synthetic``; each ``CON_*`` utterance is such a signal with one or two
intervals replaced by a vocoder-style resynthesis of the same signal, so
segment labels mix bona fide and spoof. Durations vary per utterance.
Segment labels are saved exactly as the dataset saves them: ``np.save`` of
a dict ``utt_id -> array of '0'/'1' strings`` per split and resolution.
"""

import math
import os

import numpy as np
import soundfile as sf

from lobes.testing.synthetic import SAMPLE_RATE, bonafide_signal, vocoder_resynthesis

RESOLUTIONS = ("0.01", "0.02", "0.04", "0.08", "0.16", "0.32", "0.64")
SPLIT_LETTERS = {"train": "T", "dev": "D", "eval": "E"}


def segment_labels(spoof_mask, resolution, bonafide_symbol="1"):
    """Labels of consecutive segments: spoof when any sample inside is spoof.

    Example
    -------
    >>> mask = np.zeros(800, dtype=bool); mask[500:] = True
    >>> segment_labels(mask, "0.02").tolist()
    ['1', '0', '0']
    """
    size = int(round(float(resolution) * SAMPLE_RATE))
    n_segments = math.ceil(spoof_mask.size / size)
    spoof_symbol = "0" if bonafide_symbol == "1" else "1"
    return np.array(
        [
            spoof_symbol if spoof_mask[i * size : (i + 1) * size].any() else bonafide_symbol
            for i in range(n_segments)
        ]
    )


def partially_spoofed(rng, seconds):
    """A bona fide signal with 1-2 resynthesised intervals; returns (signal, spoof mask)."""
    signal = bonafide_signal(rng, seconds)
    spoof = vocoder_resynthesis(signal, rng, int(rng.integers(0, 2)))
    mask = np.zeros(signal.size, dtype=bool)
    for _ in range(int(rng.integers(1, 3))):
        length = int(rng.uniform(0.15, 0.4) * signal.size)
        start = int(rng.integers(0, signal.size - length))
        mask[start : start + length] = True
    return np.where(mask, spoof, signal).astype(np.float32), mask


def make_partialspoof_tree(
    folder, counts, seconds=(0.4, 1.6), seed=0, bonafide_symbol="1", resolutions=RESOLUTIONS
):
    """Writes ``folder/database`` with audio, protocols and segment labels.

    Arguments
    ---------
    folder : str
        Destination; ``folder/database`` is created.
    counts : dict
        Split -> (n_bonafide, n_spoof).
    seconds : tuple
        Range of utterance durations (drawn per utterance).
    seed : int
        Everything is reproducible from it.
    bonafide_symbol : str
        Symbol written for bona fide segments; ``'0'`` makes a tree with the
        opposite polarity of the official labels.
    resolutions : sequence of str
        Label resolutions to write.

    Returns
    -------
    dict
        Split -> list of (protocol line, spoof mask).

    Example
    -------
    >>> tree = make_partialspoof_tree(getfixture("tmp_path"), {"dev": (1, 1)}, seconds=(0.3, 0.4))
    >>> [line.split()[-1] for line, _ in tree["dev"]]
    ['bonafide', 'spoof']
    """
    rng = np.random.default_rng(seed)
    root = os.path.join(str(folder), "database")
    protocols = os.path.join(root, "protocols", "PartialSpoof_LA_cm_protocols")
    label_dir = os.path.join(root, "segment_labels")
    os.makedirs(protocols, exist_ok=True)
    os.makedirs(label_dir, exist_ok=True)
    written = {}
    for split, (n_bonafide, n_spoof) in counts.items():
        audio_dir = os.path.join(root, split, "con_wav")
        os.makedirs(audio_dir, exist_ok=True)
        letter = SPLIT_LETTERS[split]
        entries = []
        for index in range(n_bonafide + n_spoof):
            speaker = f"LA_{int(rng.integers(0, 100)):04d}"
            duration = rng.uniform(*seconds)
            if index < n_bonafide:
                utt_id = f"LA_{letter}_{int(rng.integers(0, 10**7)):07d}"
                signal = bonafide_signal(rng, duration)
                mask = np.zeros(signal.size, dtype=bool)
                line = f"{speaker} {utt_id} - - bonafide"
            else:
                utt_id = f"CON_{letter}_{index:07d}"
                signal, mask = partially_spoofed(rng, duration)
                line = f"{speaker} {utt_id} - CON spoof"
            sf.write(os.path.join(audio_dir, f"{utt_id}.wav"), signal, SAMPLE_RATE)
            entries.append((line, mask))
        with open(
            os.path.join(protocols, f"PartialSpoof.LA.cm.{split}.trl.txt"), "w", encoding="utf-8"
        ) as fout:
            fout.writelines(f"{line}\n" for line, _ in entries)
        for resolution in resolutions:
            labels = {
                line.split()[1]: segment_labels(mask, resolution, bonafide_symbol)
                for line, mask in entries
            }
            np.save(os.path.join(label_dir, f"{split}_seglab_{resolution}.npy"), labels)
        written[split] = entries
    return written
