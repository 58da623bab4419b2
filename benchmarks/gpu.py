#!/usr/bin/env python3
"""What a GPU buys: training steps/s, scoring throughput, memory and FLAC decoding.

One table a user would ask for before renting a machine, about 5 minutes on
one GPU:

- training steps per second of the recipes' setting (frozen SSL, learnable
  layer sum, FFN or AASIST head, Adam, cross-entropy, batch ``--batch-size``
  of 4.04 s crops) in fp32 and under bf16 and fp16 autocast (fp16 with a
  gradient scaler, as SpeechBrain's ``--precision=fp16`` does), for
  wav2vec2-base at N = 4 and 12 and wav2vec2-large at N = 6 and 24;
- scoring throughput (files of 4.04 s per second, FFN head, no gradients)
  and real-time factor (compute seconds per second of audio) at the same
  depths and precisions;
- peak GPU memory of each row (``torch.cuda.max_memory_allocated``);
- FLAC decoding throughput (files per second) through a DataLoader with 4,
  8 and 16 workers, against the fastest scoring row: is decoding the
  bottleneck?

Weights are random, built locally from transformers configs (speed does not
depend on them; nothing is downloaded). Imports are kept minimal: the model
rows need the project (``lobes``, hence speechbrain) and say so clearly when
it cannot be imported; FLAC files are written and read with soundfile, and
the decoding rows are skipped, with a note, without it. A row that fails
records its error in the table and the run goes on.

``--device cpu --quick`` runs every code path in seconds on tiny models
(tests/integration/test_benchmark_gpu.py), so the script does not rot between GPU runs.

Examples
--------
::

    python benchmarks/gpu.py --out gpu_results          # on the GPU machine
    python benchmarks/gpu.py --device cpu --quick --out /tmp/gpu_quick
"""

import argparse
import json
import os
import sys
import tempfile
import time
import traceback

# Runnable from a bare checkout: the repository root holds ``lobes``.
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from common import (  # noqa: E402
    SAMPLE_RATE,
    UTTERANCE_SAMPLES,
    full_size_config,
    progress_printer,
    quiet_libraries,
)

from lobes.testing.tiny_models import save_random_ssl, tiny_ssl_config  # noqa: E402

SETTINGS = {"base": (4, 12), "large": (6, 24)}  # size -> depths N
PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
HEADS = ("ffn", "aasist")
WORKERS = (4, 8, 16)
QUICK_WORKERS = (0, 2)


def project_modules():
    """(LayerwiseSSL, {head name: class}) or the reason they cannot be imported."""
    try:
        from lobes.models.heads import AASISTHead, FFNHead
        from lobes.models.ssl import LayerwiseSSL
    except ImportError as err:
        return None, (f"model rows skipped: the project cannot be imported ({err}); "
                      "install speechbrain and hyperpyyaml (pip install speechbrain)")
    return (LayerwiseSSL, {"ffn": FFNHead, "aasist": AASISTHead}), None


def save_models(folder, quick):
    """``{size: (path, depths)}``: random real-size wav2vec2 (tiny with ``quick``)."""
    models = {}
    for size, depths in SETTINGS.items():
        if quick:
            # Depth adds no code path: one per size (base and large forms).
            config = tiny_ssl_config("wav2vec2", stable_layer_norm=size == "large", n_layers=2)
            config.layerdrop, config.apply_spec_augment = 0.0, False
            depths = (1,)
        else:
            config = full_size_config("wav2vec2", size)
        models[size] = (save_random_ssl(folder, f"wav2vec2-{size}", config), depths)
    return models


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_mb(device):
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None


def _autocast(device, precision):
    dtype = AUTOCAST[precision]
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def _timed(step, steps, warmup, device):
    """Seconds per call of ``step`` over ``steps`` calls after ``warmup``."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - start) / steps


def train_row(ssl, head, device, precision, batch, steps, warmup):
    """Training steps per second of one (encoder, head, precision)."""
    ssl.train()
    head.train()
    params = [p for p in (*ssl.parameters(), *head.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    wavs, lens = batch
    labels = torch.arange(len(wavs), device=device) % 2

    def step():
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            feats, frame_lens = ssl(wavs, lens)
            loss = torch.nn.functional.cross_entropy(head(feats, frame_lens).float(), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    _reset_peak(device)
    seconds = _timed(step, steps, warmup, device)
    return {"steps_per_s": 1 / seconds, "peak_mb": _peak_mb(device)}


def score_row(ssl, head, device, precision, batch, steps, warmup):
    """Scoring throughput (files/s) and real-time factor of one precision."""
    ssl.eval()
    head.eval()
    wavs, lens = batch

    def step():
        with torch.no_grad(), _autocast(device, precision):
            feats, frame_lens = ssl(wavs, lens)
            head(feats, frame_lens)

    _reset_peak(device)
    seconds = _timed(step, steps, warmup, device)
    files_per_s = len(wavs) / seconds
    audio_seconds = wavs.shape[1] / SAMPLE_RATE
    return {"files_per_s": files_per_s, "rtf": 1 / (files_per_s * audio_seconds),
            "peak_mb": _peak_mb(device)}


def _guarded(row, measure):
    """Runs ``measure``; a failure is recorded in the row, not raised."""
    try:
        row.update(measure())
    except Exception as err:  # one broken row must not end a paid GPU run
        row["error"] = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        traceback.print_exc()
    return row


def model_rows(models, modules, device, args, progress):
    """Training and scoring rows for every size, depth, precision and head."""
    ssl_class, heads = modules
    n_samples = args.n_samples
    rows = []
    for size, (path, depths) in models.items():
        for depth in depths:
            progress(f"wav2vec2-{size} N={depth}: loading")
            torch.manual_seed(0)
            ssl = ssl_class(path, n_layers=depth).to(device)
            wavs = torch.randn(args.batch_size, n_samples, device=device)
            batch = (wavs, torch.ones(args.batch_size, device=device))
            for precision in PRECISIONS:
                for head_name in HEADS:
                    progress(f"wav2vec2-{size} N={depth} {precision} train {head_name}")
                    head = heads[head_name](ssl.output_size).to(device)
                    rows.append(_guarded(
                        {"model": f"wav2vec2-{size}", "n_layers": depth, "precision": precision,
                         "task": f"train {head_name}"},
                        lambda: train_row(ssl, head, device, precision, batch, args.steps,
                                          args.warmup)))
                progress(f"wav2vec2-{size} N={depth} {precision} score")
                head = heads["ffn"](ssl.output_size).to(device)
                rows.append(_guarded(
                    {"model": f"wav2vec2-{size}", "n_layers": depth, "precision": precision,
                     "task": "score"},
                    lambda: score_row(ssl, head, device, precision, batch, args.steps,
                                      args.warmup)))
            ssl = None  # freed before the next depth loads
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


class FlacFiles(torch.utils.data.Dataset):
    """Decodes one FLAC file per item with soundfile (what the recipes' data
    pipeline does per utterance) into a float32 tensor."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        import soundfile

        audio, _ = soundfile.read(self.paths[index], dtype="float32")
        return torch.from_numpy(audio)


def decode_rows(folder, n_files, workers, batch_size, progress):
    """FLAC decoding files/s through a DataLoader, one row per worker count."""
    try:
        import numpy as np
        import soundfile
    except ImportError as err:
        return [{"task": "decode FLAC", "error": f"skipped: {err} (pip install soundfile)"}]
    progress(f"writing {n_files} FLAC files of {UTTERANCE_SAMPLES / SAMPLE_RATE:.2f} s")
    rng = np.random.default_rng(0)
    # Noise compresses as badly as anything: a worst case for FLAC decoding.
    audio = (0.1 * rng.standard_normal(UTTERANCE_SAMPLES)).astype("float32")
    paths = []
    for i in range(n_files):
        path = os.path.join(folder, f"utt{i:05d}.flac")
        soundfile.write(path, np.roll(audio, i), SAMPLE_RATE, subtype="PCM_16")
        paths.append(path)
    rows = []
    for n_workers in workers:
        progress(f"decoding with {n_workers} workers")
        row = {"task": "decode FLAC", "workers": n_workers}

        def measure():
            loader = torch.utils.data.DataLoader(
                FlacFiles(paths), batch_size=batch_size, num_workers=n_workers)
            start = time.perf_counter()  # worker start-up included, as in a real pass
            count = sum(len(b) for b in loader)
            return {"files_per_s": count / (time.perf_counter() - start)}

        rows.append(_guarded(row, measure))
    return rows


def format_table(rows, header):
    """Markdown table of every row (``-`` where a figure does not apply)."""
    fmt = lambda v, f: "-" if v is None else f.format(v)  # noqa: E731
    lines = [header, "",
             "| model | N | precision | task | steps/s | files/s | RTF | peak GPU MB | note |",
             "|---|---:|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        task = r["task"] + (f" ({r['workers']} workers)" if "workers" in r else "")
        lines.append(
            f"| {r.get('model', '-')} | {r.get('n_layers', '-')} | {r.get('precision', '-')} "
            f"| {task} | {fmt(r.get('steps_per_s'), '{:.2f}')} "
            f"| {fmt(r.get('files_per_s'), '{:.1f}')} | {fmt(r.get('rtf'), '{:.4f}')} "
            f"| {fmt(r.get('peak_mb'), '{:.0f}')} | {r.get('error', '')} |")
    return "\n".join(lines)


def bottleneck_note(rows):
    """Whether decoding keeps up with the fastest scoring row."""
    scoring = [r["files_per_s"] for r in rows if r.get("task") == "score" and "files_per_s" in r]
    decoding = {r["workers"]: r["files_per_s"] for r in rows
                if r.get("task") == "decode FLAC" and "files_per_s" in r}
    if not scoring or not decoding:
        return "decoding vs scoring: not compared (rows missing)"
    fastest = max(scoring)
    cells = [f"{w} workers {v:.0f} files/s ({v / fastest:.1f}x)" for w, v in decoding.items()]
    verdict = ("decoding keeps up" if max(decoding.values()) >= fastest
               else "decoding is the bottleneck")
    return (f"fastest scoring row {fastest:.0f} files/s; FLAC decoding: " + ", ".join(cells)
            + f": {verdict} at the most workers tried")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true",
                        help="tiny models, one depth each, 2 crops of 0.5 s, 1 step and no warm-up: "
                             "checks every path in seconds")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 (quick: 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10, quick 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 3, quick 0)")
    parser.add_argument("--files", type=int, default=None,
                        help="FLAC files decoded per worker count (default 2048, quick 8)")
    parser.add_argument("--workers", default=None,
                        help="comma-separated DataLoader worker counts (default 4,8,16; quick 0,2)")
    parser.add_argument("--out", help="folder for gpu.md and gpu.json")
    args = parser.parse_args(argv)
    quick = args.quick
    args.batch_size = args.batch_size or (2 if quick else 32)
    args.steps = args.steps or (1 if quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (0 if quick else 3)
    args.files = args.files or (8 if quick else 2048)
    args.workers = ([int(w) for w in args.workers.split(",")] if args.workers
                    else list(QUICK_WORKERS if quick else WORKERS))
    args.n_samples = SAMPLE_RATE // 2 if quick else UTTERANCE_SAMPLES
    return args


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device here; use --device cpu --quick to check the script")
    quiet_libraries()
    start = time.perf_counter()
    progress = progress_printer()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    import transformers

    header = (f"{name}; torch {torch.__version__}, transformers {transformers.__version__}; "
              f"batch {args.batch_size} x {args.n_samples / SAMPLE_RATE:.2f} s, "
              f"{args.steps} timed steps after {args.warmup}; random weights"
              + ("; QUICK (tiny models)" if args.quick else ""))
    modules, why_not = project_modules()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lobes-gpu-") as folder:
        if modules is None:
            print(why_not, file=sys.stderr)
            rows.append({"task": "train / score", "error": why_not})
        else:
            models = save_models(folder, args.quick)
            rows += model_rows(models, modules, device, args, progress)
        rows += decode_rows(folder, args.files, args.workers, args.batch_size, progress)
    table = format_table(rows, header)
    note = bottleneck_note(rows)
    print(table + "\n\n" + note)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "gpu.md"), "w", encoding="utf-8") as fout:
            fout.write(table + "\n\n" + note + "\n")
        with open(os.path.join(args.out, "gpu.json"), "w", encoding="utf-8") as fout:
            json.dump({"header": header, "rows": rows, "note": note}, fout, indent=1)
    progress(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
