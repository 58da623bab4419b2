#!/usr/bin/env python3
"""Long recordings: real-time factor of timeline scoring, stream latency, and
peak memory against file length.

Two tables, each from one run:

1. **Speed** (``--sizes``, ``--depths``): a detector with a randomly
   initialised WavLM of the real base (12 x 768) or large (24 x 1024) size,
   truncated to N layers, plus the FFN head, scores a ``--speed-seconds``
   16 kHz file as a timeline (``--window`` 4.04 s, ``--hop`` 2 s) through the
   block-by-block path (``lobes.inference.streaming.score_file_windows``).
   ``RTF`` is scoring time / audio duration (below 1: faster than real
   time). ``compute_ms`` is the median time a ``StreamScorer.push`` of 0.1 s
   takes when it completes a window (batch 1), so a window's score arrives
   ``window + compute_ms`` after its first sample (``latency_s``); with the
   hop shorter than the window, a new score comes every hop.
2. **Peak memory** (``--minutes``): a 48 kHz stereo file of each length is
   written, then scored in a fresh process (its resident peak, VmHWM,
   weights and libraries included), with windows
   (4.04 s, ``--memory-hop``) and without (the recipe's 4.04 s crop), by a
   tiny random model, so that the file, not the model, would dominate any
   growth. The 4-second file is the control row (1.00x). ``old path`` rows
   decode the whole file first (``read_audio`` + ``score_waveforms``, what
   ``SpoofDetector`` did before block reading) for comparison, at the
   lengths given by ``--old-minutes``.

Examples
--------
Full figures (long: base and large, 1-60 minutes)::

    python benchmarks/long_audio.py --sizes base large --minutes 1 10 30 60

Reduced run (what benchmarks/README.md reports, about 2 minutes on 2 CPU cores)::

    python benchmarks/long_audio.py --sizes base --speed-seconds 20 --minutes 1 10 30
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import soundfile as sf
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lobes.dataio.dataset import SAMPLE_RATE  # noqa: E402

WINDOW, HOP = 4.04, 2.0
CHUNK_SECONDS = 0.1


def write_long_wav(path, seconds, rate=48000, channels=2, seed=0):
    """Writes a ``seconds``-long 16-bit WAV, a minute at a time (never whole in memory)."""
    rng = np.random.default_rng(seed)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, subtype="PCM_16") as out:
        left = int(seconds * rate)
        while left > 0:
            n = min(left, 60 * rate)
            t = np.arange(n) / rate
            tone = 0.2 * np.sin(2 * np.pi * 220 * t)[:, None]
            out.write((tone + 0.05 * rng.standard_normal((n, channels))).astype(np.float32))
            left -= n
    return str(path)


def build_detector(source, n_layers, max_samples=64600, batch_size=8):
    """A ``SpoofDetector`` of a local SSL folder truncated to ``n_layers`` and a
    randomly initialised FFN head (speed and memory do not depend on weights)."""
    from lobes.inference.detector import SpoofDetector
    from lobes.models.heads import FFNHead
    from lobes.models.ssl import LayerwiseSSL

    torch.manual_seed(0)
    ssl = LayerwiseSSL(source, n_layers=n_layers)
    modules = {"ssl": ssl, "head": FFNHead(ssl.output_size)}
    return SpoofDetector(modules, {"max_samples": max_samples}, run_opts={"device": "cpu"},
                         batch_size=batch_size)


def peak_memory(source, n_layers, path, window=None, hop=None, old_path=False):
    """Scores ``path`` in a fresh process; returns its ``{"peak_mb", "seconds", ...}``."""
    command = [sys.executable, os.path.abspath(__file__), "--child", source, str(n_layers),
               str(path)]
    if window is not None:
        command += ["--window", str(window), "--hop", str(hop)]
    if old_path:
        command.append("--old-path")
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _child(args):
    """``--child``: score one file and print peak memory as JSON."""
    warnings.filterwarnings("ignore")
    detector = build_detector(args.source, args.n_layers)
    start = time.perf_counter()
    if args.old_path:
        from lobes.inference.detector import read_audio

        result = detector.score_waveforms([read_audio(args.path)], args.window, args.hop)[0]
    else:
        result = detector.score_files([args.path], window=args.window, hop=args.hop)[0]
    seconds = time.perf_counter() - start
    peak_mb = resident_peak_mb()
    print(json.dumps({"peak_mb": peak_mb, "seconds": seconds, "duration": result.duration,
                      "windows": len(result.window_scores)}))


def resident_peak_mb():
    """This process's peak resident memory (VmHWM), in MB.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries that over from the
    process that spawned this one (fork then exec), so a child of a big
    parent would report the parent's size.
    """
    with open("/proc/self/status", encoding="ascii") as fin:
        for line in fin:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def speed_row(source, size, n_layers, seconds, folder, repeats=1):
    """RTF of timeline scoring and stream latency of one model at depth ``n_layers``."""
    from lobes.inference.streaming import StreamScorer, score_file_windows

    detector = build_detector(source, n_layers)
    path = os.path.join(folder, "speed.wav")
    if not os.path.isfile(path):
        write_long_wav(path, seconds, rate=SAMPLE_RATE, channels=1)
    score_file_windows(detector, path, WINDOW, HOP)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = score_file_windows(detector, path, WINDOW, HOP)
        times.append(time.perf_counter() - start)
    audio = sf.read(path, dtype="float32")[0]
    scorer = StreamScorer(detector, WINDOW, HOP, batch_size=1)
    chunk = int(CHUNK_SECONDS * SAMPLE_RATE)
    compute = []
    for first in range(0, audio.shape[0], chunk):
        start = time.perf_counter()
        rows = scorer.push(audio[first : first + chunk])
        if rows:
            compute.append((time.perf_counter() - start) / len(rows))
    scorer.close()
    compute_ms = 1000 * statistics.median(compute)
    return {"model": f"wavlm-{size}", "n_layers": n_layers, "audio_s": result.duration,
            "windows": len(result.window_scores), "rtf": min(times) / result.duration,
            "compute_ms": compute_ms, "latency_s": WINDOW + compute_ms / 1000}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="*", default=["base", "large"], choices=["base", "large"])
    parser.add_argument("--depths", default="4,full", help="comma-separated N, 'full' = all layers")
    parser.add_argument("--speed-seconds", type=float, default=60.0, help="audio scored for RTF")
    parser.add_argument("--minutes", nargs="*", type=float, default=[1, 10, 30, 60])
    parser.add_argument("--old-minutes", nargs="*", type=float, default=[1, 10])
    parser.add_argument("--memory-hop", type=float, default=60.0,
                        help="hop of the memory runs (s); sparse so that they stay short")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--child", nargs=3, metavar=("SOURCE", "N", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--window", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--hop", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--old-path", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        args.source, n_layers, args.path = args.child
        args.n_layers = int(n_layers)
        return _child(args)
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    from speed import save_random_model

    from lobes.testing.tiny_models import save_tiny_ssl

    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as folder:
        print("| model | N | audio (s) | windows | RTF | compute/window (ms) | latency (s) |")
        print("|---|---|---|---|---|---|---|")
        for size in args.sizes:
            source = save_random_model(folder, "wavlm", size)
            full = 12 if size == "base" else 24
            for depth in args.depths.split(","):
                n = full if depth == "full" else int(depth)
                row = speed_row(source, size, n, args.speed_seconds, folder)
                print(f"| {row['model']} | {n} | {row['audio_s']:.0f} | {row['windows']} | "
                      f"{row['rtf']:.3f} | {row['compute_ms']:.0f} | {row['latency_s']:.2f} |",
                      flush=True)
            _remove(source)
        tiny = save_tiny_ssl(folder, "wavlm")
        print("\n| file (48 kHz stereo) | path | windows | peak RSS (MB) | vs 4 s | time (s) |")
        print("|---|---|---|---|---|---|")
        lengths = [4 / 60] + list(args.minutes)
        base = {}
        for minutes in lengths:
            path = write_long_wav(os.path.join(folder, "long.wav"), minutes * 60)
            runs = [("windows", WINDOW, args.memory_hop, False), ("crop", None, None, False)]
            if minutes in args.old_minutes or minutes == lengths[0]:
                runs.append(("old path, windows", WINDOW, args.memory_hop, True))
            for name, window, hop, old in runs:
                got = peak_memory(tiny, 2, path, window, hop, old)
                base.setdefault(name, got["peak_mb"])
                label = "4 s" if minutes == lengths[0] else f"{minutes:g} min"
                print(f"| {label} | {name} | {got['windows']} | {got['peak_mb']:.0f} | "
                      f"{got['peak_mb'] / base[name]:.2f}x | {got['seconds']:.1f} |", flush=True)
            os.remove(path)
    return 0


def _remove(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
