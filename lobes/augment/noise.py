"""Additive noise and reverberation from user lists, through SpeechBrain.

``speechbrain.augment.time_domain.AddNoise`` / ``AddReverb`` do the work; this
module checks their CSV lists at start-up (they would otherwise fail, or
silently mix the wrong rate, on the first utterance that needs them) and runs
them on one utterance with torch draws seeded from the augmenter's generator,
so that they are reproducible and leave the training loop's RNG untouched.
The lists are SpeechBrain's CSV format (``ID,duration,wav,wav_format,wav_opts``);
``lobes.augment.lists`` writes them from MUSAN or RIRS_NOISES.
"""

import csv
import os

import numpy as np
import soundfile as sf
import torch
from speechbrain.augment.time_domain import AddNoise, AddReverb

LIST_COLUMNS = ("ID", "duration", "wav", "wav_format", "wav_opts")


def check_audio_list(path, sample_rate, option):
    """Checks a SpeechBrain audio list: present, not empty, every file a mono
    file at ``sample_rate``. Errors name the option, the list and its line.

    Returns the number of files.
    """
    if not path:
        raise ValueError(f"{option} is not set: give a CSV list (see lobes.augment.lists)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{option}: list {path} does not exist")
    with open(path, newline="", encoding="utf-8") as fin:
        reader = csv.DictReader(fin)
        absent = [c for c in LIST_COLUMNS if c not in (reader.fieldnames or ())]
        if absent:
            raise ValueError(
                f"{option}: {path} lacks the columns {absent} of SpeechBrain's list format "
                f"{','.join(LIST_COLUMNS)} (lobes.augment.lists writes it)"
            )
        count = 0
        for line, row in enumerate(reader, start=2):
            where = f"{option}: {path} line {line}"
            try:
                info = sf.info(row["wav"])
            except Exception as err:  # soundfile raises several types
                raise ValueError(f"{where}: cannot read {row['wav']}: {err}") from err
            if info.samplerate != sample_rate:
                raise ValueError(
                    f"{where}: {row['wav']} is sampled at {info.samplerate} Hz; "
                    f"the recipe's audio is at {sample_rate} Hz"
                )
            if info.channels != 1:
                raise ValueError(f"{where}: {row['wav']} has {info.channels} channels; use mono files")
            if info.frames == 0:
                raise ValueError(f"{where}: {row['wav']} holds no samples")
            count += 1
    if count == 0:
        raise ValueError(f"{option}: list {path} is empty")
    return count


def _seeded(module, iterator_name, module_call, rng):
    """Runs a SpeechBrain augmentation with torch draws seeded from ``rng``.

    Its file iterator is restarted on a permutation drawn from ``rng``, so
    that the file, like the SNR and offset, depends on ``rng`` alone, not on
    earlier calls. (SpeechBrain shuffles the list with a
    ``ReproducibleRandomSampler`` of fixed seed: left alone, every worker would
    walk the files in the same order. ``data_loader`` and ``noise_data`` /
    ``rir_data`` are the attributes of speechbrain 1.1.)
    """
    seed, epoch = int(rng.integers(2**63)), int(rng.integers(2**31))
    with torch.random.fork_rng(devices=[]):
        if not hasattr(module, "data_loader"):
            torch.manual_seed(seed)
            module_call()  # its first call builds the file loader
        loader = module.data_loader
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        setattr(module, iterator_name, iter(loader))
        torch.manual_seed(seed)
        return module_call()


class NoiseFromList:
    """Adds a noise from a list at an SNR in [snr_low, snr_high] dB.

    Noises shorter than the utterance are repeated (``pad_noise``); a mixture
    over full scale is peak-normalised.
    """

    def __init__(self, csv_file, snr_low=0.0, snr_high=15.0, sample_rate=16000, option="noise.csv"):
        if snr_low > snr_high:
            raise ValueError(f"{option}: snr_low ({snr_low}) exceeds snr_high ({snr_high})")
        self.n_files = check_audio_list(csv_file, sample_rate, option)
        self.add_noise = AddNoise(
            csv_file=csv_file,
            snr_low=snr_low,
            snr_high=snr_high,
            pad_noise=True,
            normalize=True,
            noise_sample_rate=sample_rate,
            clean_sample_rate=sample_rate,
        )

    def __call__(self, x, rng):
        """``x`` with a noise drawn from the list added at an SNR drawn from ``rng``."""
        wav = torch.as_tensor(np.asarray(x, dtype=np.float32))[None]
        out = _seeded(self.add_noise, "noise_data", lambda: self.add_noise(wav, torch.ones(1)), rng)
        return out[0].numpy()


class ReverbFromList:
    """Convolves the utterance with a room impulse response from a list
    (direct path aligned, mean amplitude kept: SpeechBrain's ``reverberate``)."""

    def __init__(self, csv_file, sample_rate=16000, option="reverb.csv"):
        self.n_files = check_audio_list(csv_file, sample_rate, option)
        self.add_reverb = AddReverb(
            csv_file=csv_file, reverb_sample_rate=sample_rate, clean_sample_rate=sample_rate
        )

    def __call__(self, x, rng):
        """``x`` convolved with an impulse response drawn from the list by ``rng``."""
        wav = torch.as_tensor(np.asarray(x, dtype=np.float32))[None]
        return _seeded(self.add_reverb, "rir_data", lambda: self.add_reverb(wav), rng)[0].numpy()
