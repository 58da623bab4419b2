#!/usr/bin/env python3
"""Speed of really truncated SSL encoders against the full model and the paper.

The paper ran every transformer layer and sliced the hidden states afterwards
("paper-style": full forward, then slice), so its cost never depended on N.
``lobes.models.ssl.TruncatedSSLEncoder`` builds only the first N layers. This script
measures both on randomly initialised wav2vec2, HuBERT and WavLM encoders of
the real base (12 x 768) and large (24 x 1024, stable layer norm) sizes; speed
does not depend on the weights, so nothing is downloaded.

For every model and depth N it reports, in one run, a table and a CSV with:

- ``params``: parameters of the encoder that runs;
- ``GMAC/s``: multiply-accumulates per second of audio, counted with
  ``torch.utils.flop_counter.FlopCounterMode`` on the 4.04 s utterance
  (matrix products, convolutions and attention; element-wise work such as
  norms and activations is not counted);
- ``latency_ms``: best forward time of one 4.04 s utterance (batch 1) over
  ``--repeats`` runs after a warm-up (the minimum resists other load);
- ``utt/s``: throughput at batch size 8 (``--batch-size``);
- ``RTF``: real-time factor, latency divided by the audio duration;
- ``peak_MB``: weights plus the peak memory of the tensors the forward
  allocates (on CPU tracked tensor by tensor with a ``TorchDispatchMode``,
  which is exact for tensors and blind to allocator slack; on CUDA
  ``torch.cuda.max_memory_allocated``);

each also as a ratio to the full-depth truncated encoder (``/full``) and to
the paper-style forward of the same model (``/paper``). A ratio below 1 means
less (fewer parameters, less time or memory); for ``utt/s`` above 1 is better.

Examples
--------
Full table (base and large, the issue's depths; about 10-15 minutes on 2
CPU cores)::

    python benchmarks/speed.py --sizes base large --depths 2,4,6,12,24 \
        --csv benchmarks/results/speed.csv

Quick look at one model::

    python benchmarks/speed.py --models wavlm --sizes base --depths 2,12 --repeats 2

The other speed benchmarks share this one's helpers (``common.py``):
``overhead.py`` (our encoder against a plain Hugging Face forward, the
masked norm, speed-up against the MAC limit, with control rows),
``fast_paths.py`` (precision and backend), ``foundation.py`` (the first
figures) and ``gpu.py`` (training and scoring on a GPU).
"""

import argparse
import csv
import os
import sys
import tempfile

import numpy as np
import torch
from common import (
    METRICS,
    UTTERANCE_SAMPLES,
    PaperStyleEncoder,
    add_model_arguments,
    depth_of,
    measure_encoder,
    remove_tree,
    save_random_model,
    start_run,
)
from transformers.utils import logging as transformers_logging

from lobes.models.ssl import TruncatedSSLEncoder

DEFAULT_DEPTHS = (1, 2, 4, 6, 12, 24)
COLUMNS = (
    ("model", "model", "{}"),
    ("approach", "approach", "{}"),
    ("n_layers", "N", "{}"),
    ("params", "params(M)", "{:.1f}"),
    ("gmac_per_s", "GMAC/s", "{:.2f}"),
    ("latency_ms", "latency_ms", "{:.0f}"),
    ("utt_per_s", "utt/s", "{:.2f}"),
    ("rtf", "RTF", "{:.3f}"),
    ("peak_mb", "peak_MB", "{:.0f}"),
)


def add_ratios(rows):
    """Adds ``<metric>/full`` and ``<metric>/paper`` to every row of one model.

    The references are the truncated row at full depth and the paper-style
    row of the same model.

    Example
    -------
    >>> rows = [
    ...     {"approach": "truncated", "n_layers": 1, "params": 5, "latency_ms": 1.0},
    ...     {"approach": "truncated", "n_layers": 2, "params": 10, "latency_ms": 2.0},
    ...     {"approach": "paper", "n_layers": 1, "params": 10, "latency_ms": 2.5},
    ... ]
    >>> add_ratios(rows)[0]["params/full"], rows[0]["latency_ms/paper"]
    (0.5, 0.4)
    """
    truncated = [r for r in rows if r["approach"] == "truncated"]
    full = max(truncated, key=lambda r: r["n_layers"])
    paper = next(r for r in rows if r["approach"] == "paper")
    for row in rows:
        for metric in METRICS:
            for name, ref in (("full", full), ("paper", paper)):
                value, base = row.get(metric), ref.get(metric)
                row[f"{metric}/{name}"] = None if value is None or not base else value / base
    return rows


def benchmark_source(source, depths, device="cpu", repeats=3, batch_size=8,
                     n_samples=UTTERANCE_SAMPLES, full=True, label=None, progress=None):
    """Benchmarks one saved model at every depth and the paper-style forward.

    Arguments
    ---------
    source : str
        Local folder of a saved wav2vec2 / HuBERT / WavLM model.
    depths : list of int
        Depths N to build; depths above the model's depth are dropped and
        the full depth is always added (the ratios need it).
    device : str
        ``"cpu"`` or ``"cuda"``.
    repeats : int
        Timed repeats of the batch-1 forward (best reported); the batch
        forward is timed ``repeats // 2`` times (at least once).
    batch_size : int
        Batch size of the throughput measurement.
    n_samples : int
        Utterance length in samples (64,600 = 4.04 s).
    full : bool
        False: parameters and latency only (no MACs, throughput, memory).
    label : str, optional
        Model name in the rows; the folder name by default.
    progress : callable, optional
        Called with a message before each measurement.

    Returns
    -------
    list of dict
        One row per depth (``approach="truncated"``) plus one paper-style row
        (``approach="paper"``, ``n_layers`` = full depth: its cost does not
        depend on N), with ``METRICS`` and their ``/full`` and ``/paper``
        ratios.

    Example
    -------
    >>> from lobes.testing.tiny_models import save_tiny_ssl
    >>> path = save_tiny_ssl(getfixture("tmp_path"), "wavlm", n_layers=2)
    >>> rows = benchmark_source(path, [1], repeats=1, batch_size=2, n_samples=8000)
    >>> [(r["approach"], r["n_layers"]) for r in rows]
    [('truncated', 1), ('truncated', 2), ('paper', 2)]
    """
    label = label or os.path.basename(os.path.normpath(source))
    depth = depth_of(source)
    depths = sorted({d for d in depths if 1 <= d <= depth} | {depth})
    device = torch.device(device)
    progress = progress or (lambda message: None)
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    rows = []
    try:
        for n in depths:
            progress(f"{label}: truncated N={n}")
            encoder = TruncatedSSLEncoder(source, n_layers=n)
            rows.append({"model": label, "approach": "truncated", "n_layers": n,
                         **measure_encoder(encoder, device, repeats, batch_size, n_samples, full)})
            del encoder
        progress(f"{label}: paper-style (all {depth} layers, then slice)")
        # Slicing to any N costs the same full forward; N=1 keeps one layer.
        encoder = PaperStyleEncoder(source, n_layers=1)
        rows.append({"model": label, "approach": "paper", "n_layers": depth,
                     **measure_encoder(encoder, device, repeats, batch_size, n_samples, full)})
    finally:
        transformers_logging.set_verbosity(verbosity)
    return add_ratios(rows)


def format_table(rows, ratios=("full", "paper")):
    """Fixed-width text table of benchmark rows, ratios in brackets.

    Each metric cell reads ``value (x/full, x/paper)``.
    """
    header = [title for _, title, _ in COLUMNS]
    lines = []
    for row in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            value = row.get(key)
            if value is None:
                cells.append("-")
                continue
            text = fmt.format(value / 1e6 if key == "params" else value)
            if key in METRICS:
                parts = [row.get(f"{key}/{name}") for name in ratios]
                text += " (" + ", ".join("-" if p is None else f"{p:.2f}" for p in parts) + ")"
            cells.append(text)
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.rjust(w) for c, w in zip(cells, widths)) for cells in lines]
    note = ("each metric: value (ratio to the full-depth truncated model, "
            "ratio to the paper-style full forward + slice)")
    return "\n".join(out + [note])


def format_markdown(rows):
    """Compact Markdown table for the README: one ratio per metric.

    Sizes (params, MACs, memory) are given against the full-depth model and
    times against the paper-style forward (what a user of the paper's code
    would run); both references are the same model, so the other ratio is
    in the CSV.
    """
    lines = [
        "| model | N | params M (x full) | GMAC per s audio (x full) | latency ms "
        "(x paper) | speed-up vs paper | utt/s at batch 8 (x paper) | RTF | peak MB (x full) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        n = f"{r['n_layers']}" if r["approach"] == "truncated" else f"paper ({r['n_layers']}, sliced)"
        lines.append(
            f"| {r['model']} | {n} | {r['params'] / 1e6:.1f} ({r['params/full']:.2f}) "
            f"| {r['gmac_per_s']:.2f} ({r['gmac_per_s/full']:.2f}) "
            f"| {r['latency_ms']:.0f} ({r['latency_ms/paper']:.2f}) "
            f"| {1 / r['latency_ms/paper']:.2f}x "
            f"| {r['utt_per_s']:.2f} ({r['utt_per_s/paper']:.2f}) "
            f"| {r['rtf']:.3f} | {r['peak_mb']:.0f} ({r['peak_mb/full']:.2f}) |"
        )
    return "\n".join(lines)


def csv_fields():
    """CSV column names: identity, metrics, then every ratio."""
    ratio_fields = [f"{m}/{ref}" for m in METRICS for ref in ("full", "paper")]
    return ["model", "approach", "n_layers", *METRICS, *ratio_fields]


def write_csv(path, rows):
    """Writes the rows with ``csv_fields()`` columns (empty cell = not measured)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fout:
        writer = csv.DictWriter(fout, fieldnames=csv_fields(), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def read_csv(path):
    """Rows written by ``write_csv`` (numbers parsed, empty cells None)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fin:
        for raw in csv.DictReader(fin):
            row = {"model": raw["model"], "approach": raw["approach"],
                   "n_layers": int(raw["n_layers"])}
            for key, value in raw.items():
                if key not in row:
                    row[key] = float(value) if value != "" else None
            rows.append(row)
    return rows


def fit_fixed_cost(rows, metric):
    """Least-squares ``metric = fixed + per_layer * N`` over truncated rows.

    The intercept is the cost of everything but the transformer layers (the
    CNN feature extractor, positional convolution, input handling).

    Example
    -------
    >>> rows = [{"approach": "truncated", "n_layers": n, "t": 5.0 + 2.0 * n} for n in (1, 2, 4)]
    >>> fit_fixed_cost(rows, "t")
    (5.0, 2.0)
    """
    points = [(r["n_layers"], r[metric]) for r in rows if r["approach"] == "truncated"]
    depths, values = np.array(points, dtype=float).T
    per_layer, fixed = np.polyfit(depths, values, 1)
    return round(float(fixed), 9), round(float(per_layer), 9)


def gap_summary(rows):
    """Text comparing measured speed-ups with the compute (MAC) ratios, per model.

    For each depth: speed-up over the paper-style forward, measured
    (latency) and ideal (MACs); then the fixed, depth-independent share of
    the full model's MACs and latency, from ``fit_fixed_cost``.
    """
    lines = ["speed-up over the paper-style forward (batch-1 latency) vs the MAC ratio:"]
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        truncated = [r for r in mine if r["approach"] == "truncated"]
        full = max(truncated, key=lambda r: r["n_layers"])
        cells = []
        for row in truncated:
            measured = 1 / row["latency_ms/paper"]
            ideal = 1 / row["gmac_per_s/paper"] if row.get("gmac_per_s/paper") else float("nan")
            cells.append(f"N={row['n_layers']}: {measured:.2f}x (MACs {ideal:.2f}x)")
        fixed_macs = fit_fixed_cost(mine, "gmac_per_s")[0] / full["gmac_per_s"]
        fixed_time = fit_fixed_cost(mine, "latency_ms")[0] / full["latency_ms"]
        lines.append(f"  {model:<15} " + "; ".join(cells))
        lines.append(f"  {'':<15} fixed (N-independent) share of the full model: "
                     f"{100 * fixed_macs:.0f} % of MACs, {100 * fixed_time:.0f} % of latency")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = add_model_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--depths", default=",".join(map(str, DEFAULT_DEPTHS)),
                        help="comma-separated N; the full depth is always added")
    parser.add_argument("--csv", default="speed.csv", help="where to write the CSV")
    parser.add_argument("--from-csv", help="re-print the table and summary of a saved CSV")
    parser.add_argument("--markdown", action="store_true",
                        help="with --from-csv: print a Markdown table instead")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    progress = start_run(args, say_versions=not args.from_csv)
    if args.from_csv:
        rows = read_csv(args.from_csv)
        print(format_markdown(rows) if args.markdown else format_table(rows))
        print(gap_summary(rows))
        return 0
    depths = [int(d) for d in args.depths.split(",") if d.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="lobes-speed-") as folder:
        for size in args.sizes:
            for model_type in args.models:
                progress(f"building random {model_type}-{size}")
                source = save_random_model(folder, model_type, size)
                rows += benchmark_source(source, depths, device=args.device,
                                         repeats=args.repeats, batch_size=args.batch_size,
                                         progress=progress)
                remove_tree(source)
    print(f"\n4.04 s utterance ({UTTERANCE_SAMPLES} samples), batch 1 latency, "
          f"throughput at batch {args.batch_size}, {args.device}:")
    print(format_table(rows))
    print(gap_summary(rows))
    write_csv(args.csv, rows)
    print(f"CSV written to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
