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

The foundation figures (EER time on 600k trials; parameters and CPU forward
time of wav2vec2-base-size and WavLM-large-size encoders against the full
model)::

    python benchmarks/speed.py --foundation
"""

import argparse
import csv
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode
from torch.multiprocessing.reductions import StorageWeakRef
from transformers import (
    AutoModel,
    HubertConfig,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMModel,
)
from transformers.utils import logging as transformers_logging

from lobes.evaluation.metrics import compute_eer
from lobes.models.ssl import TruncatedSSLEncoder

SAMPLE_RATE = 16000
UTTERANCE_SAMPLES = 64600  # the paper's crop, about 4.04 s
ARCHITECTURES = {
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
    "hubert": (HubertConfig, HubertModel),
    "wavlm": (WavLMConfig, WavLMModel),
}
# The real sizes; the config classes' defaults are the base models.
SIZES = {
    "base": {},
    "large": dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
        conv_bias=True,
    ),
}
DEFAULT_DEPTHS = (1, 2, 4, 6, 12, 24)
METRICS = ("params", "gmac_per_s", "latency_ms", "utt_per_s", "rtf", "peak_mb")
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


def full_size_config(model_type, size):
    """Config of a real-size model (random weights), LayerDrop and masking off.

    Example
    -------
    >>> config = full_size_config("wavlm", "large")
    >>> config.num_hidden_layers, config.hidden_size, config.do_stable_layer_norm
    (24, 1024, True)
    """
    config_class, _ = ARCHITECTURES[model_type]
    return config_class(**SIZES[size], layerdrop=0.0, apply_spec_augment=False)


def save_random_model(folder, model_type, size, seed=0):
    """Saves a randomly initialised real-size model; returns its folder.

    The folder is loaded by ``TruncatedSSLEncoder`` exactly like a
    downloaded checkpoint, so the benchmark times the project's own
    encoder, not a stand-in.
    """
    torch.manual_seed(seed)
    config = full_size_config(model_type, size)
    path = os.path.join(str(folder), f"{model_type}-{size}")
    _, model_class = ARCHITECTURES[model_type]
    model_class(config).save_pretrained(path)
    large = size == "large"
    Wav2Vec2FeatureExtractor(do_normalize=large, return_attention_mask=large).save_pretrained(path)
    return path


class PaperStyleEncoder(torch.nn.Module):
    """The paper's approach: run every layer, then keep hidden states 1..N.

    Arguments
    ---------
    source : str
        Local folder of a saved wav2vec2 / HuBERT / WavLM model.
    n_layers : int
        Number of layers kept after the full forward.
    """

    def __init__(self, source, n_layers):
        super().__init__()
        # LayerDrop off, as in every measured encoder (eval mode skips it anyway).
        self.model = AutoModel.from_pretrained(source, layerdrop=0.0).eval()
        self.n_layers = n_layers

    def forward(self, wavs):
        """Stacked hidden states 1..N of the full model, (B, N, T, C)."""
        out = self.model(wavs, output_hidden_states=True)
        return torch.stack(out.hidden_states[1 : self.n_layers + 1], dim=1)


def _depth_of(source):
    with open(os.path.join(source, "config.json"), encoding="utf-8") as fin:
        return int(json.load(fin)["num_hidden_layers"])


class TensorMemoryTracker(TorchDispatchMode):
    """Peak bytes of the tensors created inside the ``with`` block.

    Every operator output whose storage is new (not a view or in-place
    result of an input) is counted until its storage is freed. Weights and
    inputs created before the block are not counted. This works on any
    device; on CPU it is the only exact measure, as the process RSS also
    holds allocator caches and freed-but-kept pages.

    Example
    -------
    >>> with TensorMemoryTracker() as tracker:
    ...     y = torch.ones(1000) * 2
    ...     del y
    ...     z = torch.ones(250)
    >>> tracker.peak_bytes >= 8000, tracker.current_bytes
    (True, 1000)
    """

    def __init__(self):
        super().__init__()
        self._live = {}  # storage key -> (weak reference, bytes)
        self.current_bytes = 0
        self.peak_bytes = 0

    def _forget_freed(self):
        for key in [k for k, (ref, _) in self._live.items() if ref.expired()]:
            self.current_bytes -= self._live.pop(key)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._forget_freed()
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        }
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if storage.nbytes() == 0 or key in inputs or key in self._live:
                continue
            self._live[key] = (StorageWeakRef(storage), storage.nbytes())
            self.current_bytes += storage.nbytes()
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        return out


def count_macs(encoder, wavs):
    """Multiply-accumulates of one forward (matmuls, convolutions, attention).

    ``FlopCounterMode`` counts a multiply-add as 2 FLOPs. It runs under
    ``no_grad`` (it fails on weight-normed convolutions in inference mode).
    """
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        encoder(wavs)
    return counter.get_total_flops() // 2


def forward_peak_bytes(encoder, wavs):
    """Peak bytes allocated by one forward above what existed before it."""
    if wavs.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with torch.no_grad():
            encoder(wavs)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    with torch.no_grad(), TensorMemoryTracker() as tracker:
        encoder(wavs)
    return tracker.peak_bytes


def time_forward(encoder, wavs, repeats, warmup=1):
    """Best wall time (s) of ``repeats`` forwards after ``warmup`` ones.

    The minimum, not the median: on a shared machine other processes only
    ever add time (and stall multi-threaded kernels), so the fastest repeat
    is the closest to the encoder's own cost.
    """
    times = []
    for i in range(warmup + repeats):
        _sync(wavs.device)
        start = time.perf_counter()
        with torch.no_grad():
            encoder(wavs)
        _sync(wavs.device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return min(times)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure_encoder(encoder, device, repeats=3, batch_size=8, n_samples=UTTERANCE_SAMPLES,
                    full=True):
    """All metrics of one encoder; ``full=False`` measures params and latency only.

    Returns a dict with the keys of ``METRICS`` (missing ones are None).
    """
    encoder = encoder.to(device).eval()
    seconds = n_samples / SAMPLE_RATE
    generator = torch.Generator().manual_seed(0)
    one = torch.randn(1, n_samples, generator=generator).to(device)
    latency = time_forward(encoder, one, repeats)
    row = {
        "params": sum(p.numel() for p in encoder.parameters()),
        "latency_ms": 1000 * latency,
        "rtf": latency / seconds,
        "gmac_per_s": None,
        "utt_per_s": None,
        "peak_mb": None,
    }
    if full:
        row["gmac_per_s"] = count_macs(encoder, one) / seconds / 1e9
        batch = torch.randn(batch_size, n_samples, generator=generator).to(device)
        # One repeat of a batch is already batch_size utterances of work.
        row["utt_per_s"] = batch_size / time_forward(
            encoder, batch, max(1, repeats // 2), warmup=0
        )
        weight_bytes = sum(p.numel() * p.element_size() for p in encoder.parameters())
        row["peak_mb"] = (weight_bytes + forward_peak_bytes(encoder, one)) / 2**20
    return row


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
    depth = _depth_of(source)
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


def time_eer(n_trials=600_000, bonafide_fraction=0.1, seed=0, repeats=3):
    """Best-of-``repeats`` time (s) of ``compute_eer`` on random scores.

    Example
    -------
    >>> seconds, eer = time_eer(n_trials=1000, repeats=1)
    >>> 0.0 <= eer <= 1.0
    True
    """
    rng = np.random.default_rng(seed)
    n_bonafide = int(n_trials * bonafide_fraction)
    bonafide = rng.normal(1.0, 1.0, n_bonafide)
    spoof = rng.normal(-1.0, 1.0, n_trials - n_bonafide)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        eer, _ = compute_eer(bonafide, spoof)
        best = min(best, time.perf_counter() - start)
    return best, eer


def run_foundation(folder, repeats, device, progress):
    """The foundation issue's figures: EER time, params and 4 s forward time."""
    seconds, eer = time_eer()
    print(f"EER on 600,000 random trials (60,000 bona fide): {seconds * 1000:.1f} ms "
          f"(best of 3; EER {100 * eer:.2f} %)", flush=True)
    rows = []
    for model_type, size, depths in (("wav2vec2", "base", (2, 4, 6, 12)),
                                      ("wavlm", "large", (2, 4, 6, 12, 24))):
        progress(f"building random {model_type}-{size}")
        source = save_random_model(folder, model_type, size)
        model_rows = benchmark_source(source, depths, device=device, repeats=repeats,
                                      n_samples=4 * SAMPLE_RATE, full=False, progress=progress)
        rows += model_rows
        _remove_tree(source)
    print("\nparameters and forward time on 4 s of audio (batch 1, "
          f"{device}), ratios to the full model:")
    header = f"{'model':<16} {'N':>3} {'params(M)':>10} {'/full':>6} {'forward_ms':>11} {'/full':>6}"
    print(header)
    print("-" * len(header))
    for row in rows:
        name = row["model"] if row["approach"] == "truncated" else row["model"] + " paper"
        print(f"{name:<16} {row['n_layers']:>3} {row['params'] / 1e6:>10.1f} "
              f"{row['params/full']:>6.2f} {row['latency_ms']:>11.0f} {row['latency_ms/full']:>6.2f}")
    return rows


# ---------------------------------------------------------------------------
# Precision and backend rows (issue 15)
# ---------------------------------------------------------------------------

FAST_PATHS = ("fp32/eager", "bf16/eager", "int8/eager", "fp32/compile", "bf16/compile",
              "fp32/onnx", "int8/onnx")
FAST_METRICS = ("latency_ms", "utt_per_s", "peak_mb")
EER_FLAG_POINTS = 0.1  # a path whose EER moves more than this is flagged, never a default


def _scoring_graph(source, n_layers):
    """Truncated encoder + fusion + FFN head, as ``SpoofDetector`` scores."""
    from lobes.models.heads import FFNHead
    from lobes.inference.detector import ScoringGraph
    from lobes.models.ssl import LayerwiseSSL

    torch.manual_seed(0)
    ssl = LayerwiseSSL(source, n_layers=n_layers)
    return ScoringGraph(ssl, FFNHead(ssl.output_size)).eval()


def measure_path(source, n_layers, path, device="cpu", repeats=3, batch_size=8,
                 n_samples=UTTERANCE_SAMPLES):
    """Latency (batch 1), throughput (``batch_size``) and peak memory of one fast path.

    ``path`` is ``"<precision>/<backend>"``. Compilation and export happen
    in the warm-up, outside the timings. Returns a row dict; a path the
    hardware cannot run (bf16 without native support) is returned with
    ``note`` set and no timings instead of timing its fp32 fallback.
    """
    from lobes.inference.fastpaths import build_scorer
    from lobes.models.precision import PrecisionFallbackWarning

    precision, backend = path.split("/")
    row = {"approach": path, "n_layers": n_layers, "note": ""}
    generator = torch.Generator().manual_seed(0)
    one = torch.randn(1, n_samples, generator=generator).to(device)
    batch = torch.randn(batch_size, n_samples, generator=generator).to(device)
    timings = {}
    for name, wavs in (("one", one), ("batch", batch)):
        graph = _scoring_graph(source, n_layers).to(device)
        with warnings.catch_warnings():
            warnings.simplefilter("error", PrecisionFallbackWarning)
            try:
                scorer = build_scorer(graph, precision, backend, device, batch_size=wavs.shape[0])
            except PrecisionFallbackWarning as warning:
                return {**row, "note": f"not run: {warning}".split(";")[0]}
        lens = torch.ones(wavs.shape[0])
        forward = lambda w, s=scorer, l=lens: s(w, l)  # noqa: E731
        timings[name] = time_forward(forward, wavs, repeats if name == "one" else max(1, repeats // 2))
        if name == "one":
            weight_bytes = sum(p.numel() * p.element_size() for p in graph.parameters())
            row["peak_mb"] = None if backend == "onnx" else (
                weight_bytes + forward_peak_bytes(forward, one)) / 2**20
    row["latency_ms"] = 1000 * timings["one"]
    row["utt_per_s"] = batch_size / timings["batch"]
    return row


def benchmark_fast_paths(source, n_layers, paths=FAST_PATHS, device="cpu", repeats=3,
                         batch_size=8, n_samples=UTTERANCE_SAMPLES, label=None, progress=None):
    """Rows for the full-depth fp32 model, the paper-style forward and each path at N.

    Ratios ``<metric>/full`` and ``<metric>/paper`` are against the first two.

    Example
    -------
    >>> from lobes.testing.tiny_models import save_tiny_ssl
    >>> source = save_tiny_ssl(getfixture("tmp_path"), "wavlm", n_layers=2)
    >>> rows = benchmark_fast_paths(source, 1, ["int8/eager"], repeats=1, batch_size=2,
    ...                             n_samples=8000)
    >>> [(r["approach"], r["n_layers"]) for r in rows]
    [('full fp32', 2), ('paper', 2), ('int8/eager', 1)]
    """
    label = label or os.path.basename(os.path.normpath(source))
    progress = progress or (lambda message: None)
    depth = _depth_of(source)
    progress(f"{label}: full depth {depth}, fp32")
    full = {**measure_path(source, depth, "fp32/eager", device, repeats, batch_size, n_samples),
            "approach": "full fp32"}
    progress(f"{label}: paper-style (all {depth} layers, then slice)")
    paper = {"approach": "paper", "n_layers": depth, "note": "",
             **{k: v for k, v in measure_encoder(PaperStyleEncoder(source, 1), device, repeats,
                                                 batch_size, n_samples).items()
                if k in FAST_METRICS}}
    rows = [full, paper]
    for path in paths:
        progress(f"{label}: N={n_layers} {path}")
        rows.append(measure_path(source, n_layers, path, device, repeats, batch_size, n_samples))
    for row in rows:
        row["model"] = label
        for metric in FAST_METRICS:
            for name, ref in (("full", full), ("paper", paper)):
                value, base = row.get(metric), ref.get(metric)
                row[f"{metric}/{name}"] = None if value is None or not base else value / base
    return rows


def score_fidelity(model_dir, files, labels, paths=FAST_PATHS, emulate_bf16=False, progress=None):
    """Score fidelity of each fast path against fp32 eager on a trained model.

    Arguments
    ---------
    model_dir : str
        A recipe output folder (``SpoofDetector.from_output_folder``).
    files, labels : list
        Audio files and their labels (1 = bona fide, 0 = spoof).
    emulate_bf16 : bool
        Run bf16 even on hardware without native bf16 (slow, but the
        numbers are the same as on hardware with it).

    Returns
    -------
    dict
        path -> ``{"max_abs_diff", "pearson", "eer", "eer_change_points", "flagged"}``
        (``eer`` in %, the fp32 row included as ``"fp32/eager"``).
    """
    import lobes.models.precision as precision_module
    from lobes.inference.detector import SpoofDetector

    progress = progress or (lambda message: None)
    native = precision_module.cpu_has_native_bf16
    if emulate_bf16:
        precision_module.cpu_has_native_bf16 = lambda: True
    labels = np.asarray(labels)
    scores = {}
    try:
        for path in dict.fromkeys(("fp32/eager", *paths)):
            progress(f"fidelity: {path}")
            precision, backend = path.split("/")
            detector = SpoofDetector.from_output_folder(
                model_dir, run_opts={"device": "cpu"}, precision=precision, backend=backend)
            scores[path] = np.array([r.score for r in detector.score_files(files)])
    finally:
        precision_module.cpu_has_native_bf16 = native
    reference = scores["fp32/eager"]
    eer_of = lambda s: 100 * compute_eer(s[labels == 1], s[labels == 0])[0]  # noqa: E731
    reference_eer = eer_of(reference)
    fidelity = {}
    for path, values in scores.items():
        change = eer_of(values) - reference_eer
        fidelity[path] = {
            "max_abs_diff": float(np.abs(values - reference).max()),
            "pearson": float(np.corrcoef(values, reference)[0, 1]),
            "eer": eer_of(values),
            "eer_change_points": change,
            "flagged": abs(change) > EER_FLAG_POINTS,
        }
    return fidelity


def format_fast_table(rows, fidelity=None):
    """Markdown table of the precision/backend rows, with fidelity columns."""
    fidelity = fidelity or {}
    lines = [
        "| model | path | N | latency ms (x full, x paper) | utt/s at batch 8 (x full, x paper) "
        "| peak MB (x full) | max abs score diff | Pearson | EER change (points) | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    fmt = lambda v, f: "-" if v is None else f.format(v)  # noqa: E731
    for r in rows:
        fid = fidelity.get(r["approach"], {})
        flag = " **flagged**" if fid.get("flagged") else ""
        latency = (f"{fmt(r.get('latency_ms'), '{:.0f}')} ({fmt(r.get('latency_ms/full'), '{:.2f}')}, "
                   f"{fmt(r.get('latency_ms/paper'), '{:.2f}')})")
        speedup = (f"{fmt(r.get('utt_per_s'), '{:.2f}')} ({fmt(r.get('utt_per_s/full'), '{:.2f}')}x, "
                   f"{fmt(r.get('utt_per_s/paper'), '{:.2f}')}x)")
        memory = f"{fmt(r.get('peak_mb'), '{:.0f}')} ({fmt(r.get('peak_mb/full'), '{:.2f}')})"
        lines.append(
            f"| {r['model']} | {r['approach']} | {r['n_layers']} | {latency} | {speedup} | {memory} "
            f"| {fmt(fid.get('max_abs_diff'), '{:.1e}')} | {fmt(fid.get('pearson'), '{:.5f}')} "
            f"| {fmt(fid.get('eer_change_points'), '{:+.2f}')}{flag} | {r.get('note', '')} |"
        )
    return "\n".join(lines)


def _remove_tree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _quiet_libraries():
    """Silences per-model progress bars and logs so the progress lines stay readable."""
    import logging

    transformers_logging.disable_progress_bar()
    logging.getLogger("speechbrain.integrations.huggingface.huggingface").setLevel(logging.ERROR)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES),
                        choices=list(ARCHITECTURES))
    parser.add_argument("--sizes", nargs="+", default=["base", "large"], choices=list(SIZES))
    parser.add_argument("--depths", default=",".join(map(str, DEFAULT_DEPTHS)),
                        help="comma-separated N; the full depth is always added")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed batch-1 forwards (best kept); half as many batches")
    parser.add_argument("--batch-size", type=int, default=8, help="throughput batch size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--csv", default="speed.csv", help="where to write the CSV")
    parser.add_argument("--from-csv", help="re-print the table and summary of a saved CSV")
    parser.add_argument("--markdown", action="store_true",
                        help="with --from-csv: print a Markdown table instead")
    parser.add_argument("--foundation", action="store_true",
                        help="print the foundation issue's figures instead")
    parser.add_argument("--fast", action="store_true",
                        help="precision/backend rows at --fast-depths instead of the depth sweep")
    parser.add_argument("--fast-depths", default="base:4,large:6",
                        help="depth N per size for --fast, e.g. base:4,large:6")
    parser.add_argument("--paths", default=",".join(FAST_PATHS),
                        help="comma-separated <precision>/<backend> paths for --fast")
    parser.add_argument("--fidelity-run",
                        help="trained recipe output folder (e.g. demo.py's <workdir>/run) whose "
                             "eval manifest is scored by every path for the fidelity columns")
    parser.add_argument("--fidelity-json",
                        help="fidelity saved by an earlier --fidelity-run (its 'fidelity' key)")
    parser.add_argument("--json", help="with --fast: also write rows and fidelity here")
    return parser.parse_args(argv)


def eval_files_and_labels(run_folder):
    """Files and labels (1 = bona fide) of a recipe run's eval manifest."""
    with open(os.path.join(run_folder, "manifests", "eval.csv"), newline="", encoding="utf-8") as fin:
        rows = list(csv.DictReader(fin))
    return [r["wav"] for r in rows], [int(r["label"] == "bonafide") for r in rows]


def run_fast(args, folder, progress):
    """The precision/backend table (and fidelity on a trained run) of issue 15."""
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    depths = dict(item.split(":") for item in args.fast_depths.split(","))
    fidelity = None
    if args.fidelity_json:
        with open(args.fidelity_json, encoding="utf-8") as fin:
            fidelity = json.load(fin)["fidelity"]
    elif args.fidelity_run:
        files, labels = eval_files_and_labels(args.fidelity_run)
        fidelity = score_fidelity(args.fidelity_run, files, labels, paths, emulate_bf16=True,
                                  progress=progress)
        print(f"\nscore fidelity on {len(files)} eval trials of {args.fidelity_run} "
              f"(bf16 emulated where the CPU lacks it):")
        for path, fid in fidelity.items():
            print(f"  {path:<14} max |diff| {fid['max_abs_diff']:.2e}  Pearson {fid['pearson']:.6f}  "
                  f"EER {fid['eer']:.2f} % ({fid['eer_change_points']:+.2f} points)"
                  + ("  FLAGGED" if fid["flagged"] else ""), flush=True)
    rows = []
    for size in args.sizes:
        for model_type in args.models:
            progress(f"building random {model_type}-{size}")
            source = save_random_model(folder, model_type, size)
            rows += benchmark_fast_paths(source, int(depths[size]), paths, args.device,
                                         args.repeats, args.batch_size, progress=progress)
            _remove_tree(source)
    print(f"\n4.04 s utterance, batch 1 latency, throughput at batch {args.batch_size}, "
          f"{args.device}, {torch.get_num_threads()} threads:")
    print(format_fast_table(rows, fidelity))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fout:
            json.dump({"rows": rows, "fidelity": fidelity}, fout, indent=1)
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    _quiet_libraries()
    start = time.perf_counter()

    def progress(message):
        print(f"[{time.perf_counter() - start:6.0f} s] {message}", file=sys.stderr, flush=True)

    if args.from_csv:
        rows = read_csv(args.from_csv)
        print(format_markdown(rows) if args.markdown else format_table(rows))
        print(gap_summary(rows))
        return 0
    print(f"torch {torch.__version__}, device {args.device}, "
          f"{torch.get_num_threads()} CPU threads", flush=True)
    with tempfile.TemporaryDirectory(prefix="lobes-speed-") as folder:
        if args.foundation:
            run_foundation(folder, args.repeats, args.device, progress)
            return 0
        if args.fast:
            return run_fast(args, folder, progress)
        depths = [int(d) for d in args.depths.split(",") if d.strip()]
        rows = []
        for size in args.sizes:
            for model_type in args.models:
                progress(f"building random {model_type}-{size}")
                source = save_random_model(folder, model_type, size)
                rows += benchmark_source(source, depths, device=args.device,
                                         repeats=args.repeats, batch_size=args.batch_size,
                                         progress=progress)
                _remove_tree(source)
    print(f"\n4.04 s utterance ({UTTERANCE_SAMPLES} samples), batch 1 latency, "
          f"throughput at batch {args.batch_size}, {args.device}:")
    print(format_table(rows))
    print(gap_summary(rows))
    write_csv(args.csv, rows)
    print(f"CSV written to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
