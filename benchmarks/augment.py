#!/usr/bin/env python3
"""Speed of each training augmentation on one CPU core.

For every method it prints the seconds of audio augmented per CPU-second
(``x real time``): each RawBoost mode, each codec at each bitrate of the
recipes' ``augment.codec.codecs`` list, and noise and reverberation from
lists (``--noise-csv`` / ``--rirs-csv``; without them, small synthetic lists
of 10 s noises and 0.5 s impulse responses written to a temporary folder).
The utterance is the recipes' 4.04 s crop (64,600 samples at 16 kHz), the
figure the median over ``--repeats`` calls of CPU time (``time.process_time``,
one thread: BLAS, FFT and torch are pinned to one). Goals: 50x real time per
RawBoost mode, 20x per codec, so that a few DataLoader workers keep a GPU fed.
A codec that the installed PyAV's FFmpeg build cannot run is left out and
named on the last line, with what the build lacks.

    python benchmarks/augment.py --repeats 30 --markdown
"""

import os

if __name__ == "__main__":  # not when a test imports it: the env would leak
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_name] = "1"  # before numpy/torch load their thread pools

import argparse  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import av  # noqa: E402

from lobes.augment.codec import CodecRoundTrip, missing_codecs, probe_signal  # noqa: E402
from lobes.augment.lists import write_audio_list  # noqa: E402
from lobes.augment.noise import NoiseFromList, ReverbFromList  # noqa: E402
from lobes.augment.rawboost import MODES, RawBoost  # noqa: E402

SAMPLE_RATE = 16000
N_SAMPLES = 64600
GOALS = {"rawboost": 50.0, "codec": 20.0}


def recipe_codecs():
    """The codec list of the recipes' ``augment:`` block (ASVspoof 2019)."""
    path = os.path.join(REPO, "recipes", "ASVspoof2019", "hparams", "aasist.yaml")
    text = open(path, encoding="utf-8").read()
    block = re.search(r"^augment:\n(?:(?:    .*)?\n)+", text, re.M).group(0)
    return yaml.safe_load(block)["augment"]["codec"]["codecs"]


def synthetic_lists(folder):
    """Noise and RIR lists of synthetic files, for a run without MUSAN/RIRS."""
    rng = np.random.default_rng(0)
    noises, rirs = [], []
    for i in range(4):
        noises.append(os.path.join(folder, f"noise{i}.wav"))
        sf.write(noises[-1], 0.1 * rng.standard_normal(10 * SAMPLE_RATE), SAMPLE_RATE)
        rir = np.zeros(SAMPLE_RATE // 2)
        rir[50] = 1.0
        rir[51:] = 0.1 * rng.standard_normal(rir.size - 51) * np.exp(-np.arange(rir.size - 51) / 1500)
        rirs.append(os.path.join(folder, f"rir{i}.wav"))
        sf.write(rirs[-1], rir, SAMPLE_RATE)
    noise_csv, rirs_csv = os.path.join(folder, "noise.csv"), os.path.join(folder, "rirs.csv")
    write_audio_list(noises, noise_csv, folder)
    write_audio_list(rirs, rirs_csv, folder)
    return noise_csv, rirs_csv


def cpu_speed(method, x, repeats):
    """Median seconds of audio per CPU-second over ``repeats`` calls."""
    rng = np.random.default_rng(0)
    method(x, rng)  # warm-up (imports, FFT plans, file lists)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        method(x, rng)
        times.append(time.process_time() - start)
    return (x.shape[0] / SAMPLE_RATE) / max(float(np.median(times)), 1e-9)


def methods(noise_csv, rirs_csv, missing):
    """(family, name, callable) of every method benchmarked; codecs in
    ``missing`` (``lobes.augment.codec.missing_codecs``) are left out."""
    found = [("rawboost", f"rawboost mode {mode}", RawBoost(mode, SAMPLE_RATE)) for mode in MODES if mode]
    runnable = {name: bitrates for name, bitrates in recipe_codecs().items() if name not in missing}
    codecs = CodecRoundTrip(runnable, SAMPLE_RATE)
    for codec, bitrate in codecs.delays:
        found.append((
            "codec", f"{codec} {bitrate / 1000:g} kbit/s",
            lambda x, rng, c=codec, b=bitrate: codecs.round_trip(x, c, b),
        ))
    found.append(("noise", "noise (AddNoise)", NoiseFromList(noise_csv, 0, 15, SAMPLE_RATE)))
    found.append(("reverb", "reverb (AddReverb)", ReverbFromList(rirs_csv, SAMPLE_RATE)))
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--noise-csv", help="a noise list (default: synthetic)")
    parser.add_argument("--rirs-csv", help="an RIR list (default: synthetic)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    x = np.tile(probe_signal(SAMPLE_RATE), 5)[:N_SAMPLES]
    with tempfile.TemporaryDirectory() as folder:
        noise_csv, rirs_csv = synthetic_lists(folder)
        rows = []
        missing = missing_codecs(recipe_codecs())
        for family, name, method in methods(args.noise_csv or noise_csv, args.rirs_csv or rirs_csv, missing):
            speed = cpu_speed(method, x, args.repeats)
            goal = GOALS.get(family)
            verdict = "-" if goal is None else ("ok" if speed >= goal else "BELOW GOAL")
            rows.append((name, speed, goal, verdict))
    if args.markdown:
        print("| method | x real time (1 core) | goal | |")
        print("|---|---:|---:|---|")
        for name, speed, goal, verdict in rows:
            print(f"| {name} | {speed:.0f} | {'' if goal is None else f'{goal:.0f}'} | {verdict} |")
    else:
        for name, speed, goal, verdict in rows:
            print(f"{name:28s} {speed:8.0f}x real time   goal {goal or '-'}   {verdict}")
    failed = [name for name, _, _, verdict in rows if verdict == "BELOW GOAL"]
    print(f"{len(rows)} methods, {len(failed)} below goal{': ' + ', '.join(failed) if failed else ''}")
    if missing:
        lacking = "; ".join(f"{name} ({', '.join(what)})" for name, what in missing.items())
        print(f"not run, the FFmpeg build of PyAV {av.__version__} lacks: {lacking}")


if __name__ == "__main__":
    main()
