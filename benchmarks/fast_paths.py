#!/usr/bin/env python3
"""Precision and backend of the scoring graph: bf16, int8, compiled and exported.

For each size, the rows time the full-depth fp32 model, the paper-style
forward (all layers, then slice) and every ``<precision>/<backend>`` path
of ``lobes.inference.fastpaths`` at one depth N, on random real-size wav2vec2 /
HuBERT / WavLM encoders; optionally with the score fidelity of each path on
a trained recipe run.

Examples
--------
::

    # a trained model for the fidelity columns (tiny wav2vec2, synthetic LA data)
    python recipes/ASVspoof2019/demo.py --workdir demo_run --epochs 4 --trials 40
    python benchmarks/fast_paths.py --models wav2vec2 --sizes base large --repeats 2 \
        --fidelity-run demo_run/run --json benchmarks/results/fast.json
"""

import argparse
import csv
import json
import os
import sys
import tempfile
import warnings

import numpy as np
import torch
from common import (
    UTTERANCE_SAMPLES,
    PaperStyleEncoder,
    add_model_arguments,
    depth_of,
    forward_peak_bytes,
    measure_encoder,
    remove_tree,
    save_random_model,
    start_run,
    time_forward,
)

from lobes.evaluation.metrics import compute_eer

FAST_PATHS = ("fp32/eager", "bf16/eager", "int8/eager", "fp32/compile", "bf16/compile",
              "fp32/onnx", "int8/onnx")
FAST_METRICS = ("latency_ms", "utt_per_s", "peak_mb")
EER_FLAG_POINTS = 0.1  # a path whose EER moves more than this is flagged, never a default


def _scoring_graph(source, n_layers):
    """Truncated encoder + fusion + FFN head, as ``SpoofDetector`` scores."""
    from lobes.inference.detector import ScoringGraph
    from lobes.models.heads import FFNHead
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
        forward = lambda w, s=scorer, frame_lens=lens: s(w, frame_lens)  # noqa: E731
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
    depth = depth_of(source)
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


def eval_files_and_labels(run_folder):
    """Files and labels (1 = bona fide) of a recipe run's eval manifest."""
    with open(os.path.join(run_folder, "manifests", "eval.csv"), newline="", encoding="utf-8") as fin:
        rows = list(csv.DictReader(fin))
    return [r["wav"] for r in rows], [int(r["label"] == "bonafide") for r in rows]


def run_fast(args, folder, progress):
    """The precision/backend table (and fidelity on a trained run)."""
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
            remove_tree(source)
    print(f"\n4.04 s utterance, batch 1 latency, throughput at batch {args.batch_size}, "
          f"{args.device}, {torch.get_num_threads()} threads:")
    print(format_fast_table(rows, fidelity))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fout:
            json.dump({"rows": rows, "fidelity": fidelity}, fout, indent=1)
    return 0


def parse_args(argv=None):
    parser = add_model_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--fast-depths", default="base:4,large:6",
                        help="depth N per size, e.g. base:4,large:6")
    parser.add_argument("--paths", default=",".join(FAST_PATHS),
                        help="comma-separated <precision>/<backend> paths")
    parser.add_argument("--fidelity-run",
                        help="trained recipe output folder (e.g. demo.py's <workdir>/run) whose "
                             "eval manifest is scored by every path for the fidelity columns")
    parser.add_argument("--fidelity-json",
                        help="fidelity saved by an earlier --fidelity-run (its 'fidelity' key)")
    parser.add_argument("--json", help="also write rows and fidelity here")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    progress = start_run(args)
    with tempfile.TemporaryDirectory(prefix="lobes-fast-") as folder:
        return run_fast(args, folder, progress)


if __name__ == "__main__":
    sys.exit(main())
