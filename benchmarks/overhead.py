#!/usr/bin/env python3
"""Does our encoder cost what its multiply-adds say? Three side-by-side tables.

Everything runs in one process on one torch thread (``--threads``), with
random real-size wav2vec2 weights (``common.save_random_model``) and one
4.04 s utterance. Each table times its rows in interleaved rounds (every row
once per round, so other processes' load falls on all rows alike) and
reports medians. Each table has a control row, its reference timed a second
time under another name, which must read 1.00x; while it is off by more
than ``--tolerance``, more rounds are added (up to ``--max-attempts`` times).

1. ``norm``: ``LengthMaskedGroupNorm`` (the padding-exact first CNN norm)
   against ``nn.GroupNorm`` on the first CNN layer's output, (1, 512, 12919)
   and a padded batch of 4; "before" is the earlier mask-tensor
   implementation (kept as the path for tracers).
2. ``plain``: our full-depth ``TruncatedSSLEncoder`` (with lengths, as the
   recipes and the detector call it, and without) against a plain
   ``Wav2Vec2Model`` forward of the same weights, with transformers' default
   attention (sdpa) and with ``attn_implementation="eager"``.
3. ``depth``: our encoder at every depth N against our full depth: the
   measured speed-up, the MAC-ratio limit (MACs at full depth / MACs at N,
   ``FlopCounterMode``) and their quotient (the goal is at least 0.9); the
   paper-style forward (all layers, then slice); and the CNN feature
   encoder's time per GMAC against the transformer layers'.

Example
-------
::

    python benchmarks/overhead.py --sizes base --repeats 5 --out benchmarks/results/overhead
"""

import argparse
import json
import os
import sys
import tempfile
import time

import torch
import torch.nn as nn
from common import (
    SAMPLE_RATE,
    UTTERANCE_SAMPLES,
    PaperStyleEncoder,
    count_macs,
    depth_of,
    interleaved_times,
    median,
    progress_printer,
    quiet_libraries,
    remove_tree,
    save_random_model,
)
from transformers import AutoModel

from lobes.models.ssl import LengthMaskedGroupNorm, TruncatedSSLEncoder

CONTROL = " (control: timed again)"
# Wall time, or with one torch thread (the default) the CPU time of the
# thread that does all the work: on a shared machine it leaves out the time
# other processes hold the cores (set in main).
CLOCK = [time.perf_counter]


def timed_table(calls, reference, repeats, tolerance=0.02, max_attempts=3, progress=None):
    """Medians of interleaved timings, with the reference's control row.

    ``calls`` maps row names to callables; ``reference`` names the row the
    ratios are taken against. Its control (the same callable again) is
    added; rounds are added until the control reads 1.00 within
    ``tolerance`` or ``max_attempts`` blocks of ``repeats`` rounds ran.
    Returns rows ``{"name", "ms", "x_ref"}`` (``x_ref`` = time / reference
    time) and the number of rounds.

    Example
    -------
    >>> rows, rounds = timed_table({"a": lambda: None}, "a", repeats=2, tolerance=10)
    >>> [r["name"] for r in rows], rounds
    (['a', 'a (control: timed again)'], 2)
    """
    calls = dict(calls)
    calls[reference + CONTROL] = calls[reference]
    times = {name: [] for name in calls}
    for attempt in range(max_attempts):
        new = interleaved_times(calls, repeats, warmup=1 if attempt == 0 else 0, clock=CLOCK[0])
        for name, values in new.items():
            times[name] += values
        control = median(times[reference + CONTROL]) / median(times[reference])
        if progress:
            progress(f"  {len(times[reference])} rounds: control reads {control:.3f}x")
        if abs(control - 1) <= tolerance:
            break
    ref = median(times[reference])
    rows = [{"name": name, "ms": 1000 * median(values), "x_ref": median(values) / ref}
            for name, values in times.items()]
    return rows, len(times[reference])


def norm_table(repeats, tolerance, max_attempts, progress, channels=512, frames=12919):
    """Table 1: the masked first-layer norm against nn.GroupNorm."""
    torch.manual_seed(0)
    plain = nn.GroupNorm(channels, channels)
    masked = LengthMaskedGroupNorm(channels, channels)
    with torch.no_grad():
        plain.weight.normal_()
        plain.bias.normal_()
    masked.load_state_dict(plain.state_dict())
    one = torch.randn(1, channels, frames)
    batch = torch.randn(4, channels, frames)
    full = torch.tensor([frames])
    padded = torch.tensor([frames, int(0.8 * frames), int(0.6 * frames), int(0.4 * frames)])

    def run(lengths, x, before=False):
        masked.lengths = lengths
        return masked._masked_traceable(x) if before else masked(x)

    tables = []
    size = f"{channels} x {frames}"
    for label, x, lengths in ((f"1 x {size}, full length", one, full),
                              (f"4 x {size}, lengths 1.0/0.8/0.6/0.4", batch, padded)):
        progress(f"norm: {label}")
        calls = {
            "nn.GroupNorm (padding counted)": lambda x=x: plain(x),
            "LengthMaskedGroupNorm before (mask tensors)":
                lambda x=x, n=lengths: run(n, x, before=True),
            "LengthMaskedGroupNorm now": lambda x=x, n=lengths: run(n, x),
        }
        if len(x) == 1:
            calls["LengthMaskedGroupNorm now, 400 padded frames"] = (
                lambda x=x: run(torch.tensor([frames - 400]), x))
        with torch.no_grad():
            rows, rounds = timed_table(calls, "nn.GroupNorm (padding counted)", repeats,
                                       tolerance, max_attempts, progress)
        tables.append({"input": label, "rounds": rounds, "rows": rows})
    masked.lengths = None
    return tables


def plain_table(source, repeats, tolerance, max_attempts, progress, n_samples):
    """Table 2: our full-depth encoder against a plain HF forward."""
    depth = depth_of(source)
    ours = TruncatedSSLEncoder(source, n_layers=depth).eval()
    sdpa = AutoModel.from_pretrained(source).eval()
    eager = AutoModel.from_pretrained(source, attn_implementation="eager").eval()
    wavs = torch.randn(1, n_samples, generator=torch.Generator().manual_seed(0))
    lens = torch.ones(1)
    calls = {
        f"HF Wav2Vec2Model forward ({sdpa.config._attn_implementation})": lambda: sdpa(wavs),
        "HF Wav2Vec2Model forward (eager attention)": lambda: eager(wavs),
        "ours, N = full, with lengths (recipes, detector)": lambda: ours(wavs, lens),
        "ours, N = full, no lengths": lambda: ours(wavs),
    }
    reference = next(iter(calls))
    with torch.no_grad():
        rows, rounds = timed_table(calls, reference, repeats, tolerance, max_attempts, progress)
    return {"rounds": rounds, "rows": rows,
            "our_attention": ours.model.config._attn_implementation}


def depth_table(source, depths, repeats, tolerance, max_attempts, progress, n_samples):
    """Table 3: speed-up over full depth against the MAC-ratio limit."""
    full = depth_of(source)
    depths = sorted({d for d in depths if 1 <= d < full})
    wavs = torch.randn(1, n_samples, generator=torch.Generator().manual_seed(0))
    lens = torch.ones(1)
    encoders = {n: TruncatedSSLEncoder(source, n_layers=n).eval() for n in (*depths, full)}
    paper = PaperStyleEncoder(source, n_layers=1)
    cnn = encoders[full].model.feature_extractor
    macs = {n: count_macs(lambda w, e=e: e(w, lens), wavs) for n, e in encoders.items()}
    macs["cnn"] = count_macs(cnn, wavs)
    calls = {f"N = {n}": (lambda e=e: e(wavs, lens)) for n, e in encoders.items()}
    calls["paper-style (all layers, then slice)"] = lambda: paper(wavs)
    calls["CNN feature encoder alone"] = lambda: cnn(wavs)
    with torch.no_grad():
        rows, rounds = timed_table(calls, f"N = {full}", repeats, tolerance, max_attempts,
                                   progress)
    ms = {r["name"]: r["ms"] for r in rows}
    out = []
    for n in (*depths, full):
        speedup = ms[f"N = {full}"] / ms[f"N = {n}"]
        limit = macs[full] / macs[n]
        out.append({"n_layers": n, "params": sum(p.numel() for p in encoders[n].parameters()),
                    "ms": ms[f"N = {n}"], "gmac": macs[n] / 1e9, "speedup": speedup,
                    "mac_limit": limit, "efficiency": speedup / limit,
                    "speedup_vs_paper": ms["paper-style (all layers, then slice)"] / ms[f"N = {n}"]})
    # Per-layer cost from the two ends of the sweep; the CNN timed on its own.
    low = depths[0] if depths else full
    layers = max(full - low, 1)
    layer_ms = (ms[f"N = {full}"] - ms[f"N = {low}"]) / layers
    layer_gmac = (macs[full] - macs[low]) / layers / 1e9
    frontend = {
        "cnn_ms": ms["CNN feature encoder alone"], "cnn_gmac": macs["cnn"] / 1e9,
        "cnn_ms_per_gmac": ms["CNN feature encoder alone"] / (macs["cnn"] / 1e9),
        "layer_ms": layer_ms, "layer_gmac": layer_gmac,
        "layer_ms_per_gmac": layer_ms / layer_gmac if layer_gmac else float("nan"),
    }
    return {"rounds": rounds, "rows": rows, "depths": out, "frontend": frontend}


def markdown(result):
    """The three tables as Markdown."""
    lines = [f"torch {result['torch']}, transformers {result['transformers']}, "
             f"{result['threads']} torch thread(s), one {result['seconds']:.2f} s utterance; "
             f"medians of interleaved rounds of {result.get('clock', 'wall time')}", ""]
    for table in result.get("norm", []):
        lines += [f"**Masked norm vs plain GroupNorm**, {table['input']} ({table['rounds']} rounds)",
                  "", "| row | ms | x nn.GroupNorm |", "|---|---:|---:|"]
        lines += [f"| {r['name']} | {r['ms']:.1f} | {r['x_ref']:.2f}x |" for r in table["rows"]]
        lines.append("")
    for size, table in result.get("plain", {}).items():
        lines += [f"**wav2vec2-{size}: our full depth vs a plain forward** ({table['rounds']} "
                  f"rounds; our encoder loads with attention '{table['our_attention']}')",
                  "", "| row | ms | x plain forward |", "|---|---:|---:|"]
        lines += [f"| {r['name']} | {r['ms']:.0f} | {r['x_ref']:.3f}x |" for r in table["rows"]]
        lines.append("")
    for size, table in result.get("depth", {}).items():
        lines += [f"**wav2vec2-{size}: speed-up over full depth vs the MAC-ratio limit** "
                  f"({table['rounds']} rounds)", "",
                  "| N | params M | GMAC | ms | speed-up vs full | MAC limit | speed-up / limit "
                  "| speed-up vs paper-style |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {d['n_layers']} | {d['params'] / 1e6:.1f} | {d['gmac']:.1f} | {d['ms']:.0f} "
                  f"| {d['speedup']:.2f}x | {d['mac_limit']:.2f}x | {d['efficiency']:.2f} "
                  f"| {d['speedup_vs_paper']:.2f}x |" for d in table["depths"]]
        control = next(r for r in table["rows"] if r["name"].endswith(CONTROL))
        paper = next(r for r in table["rows"] if r["name"].startswith("paper"))
        f = table["frontend"]
        lines += ["", f"control (full depth timed again): {control['x_ref']:.3f}x; paper-style "
                  f"forward: {paper['x_ref']:.3f}x full depth. CNN feature encoder alone: "
                  f"{f['cnn_ms']:.0f} ms for {f['cnn_gmac']:.2f} GMAC = {f['cnn_ms_per_gmac']:.1f} "
                  f"ms/GMAC; one transformer layer: {f['layer_ms']:.1f} ms for "
                  f"{f['layer_gmac']:.2f} GMAC = {f['layer_ms_per_gmac']:.1f} ms/GMAC "
                  f"(CNN {f['cnn_ms_per_gmac'] / f['layer_ms_per_gmac']:.2f}x the time per MAC).",
                  ""]
    return "\n".join(lines)


def readme_table(result):
    """The root README's speed table, from the depth tables of one run."""
    lines = ["| encoder | N | params | latency (1 thread) | speed-up vs full depth | MAC ratio "
             "| speed-up / MAC ratio |", "|---|---:|---:|---:|---:|---:|---:|"]
    for size, table in result.get("depth", {}).items():
        full = table["depths"][-1]["n_layers"]
        for d in table["depths"]:
            n = f"{d['n_layers']} (full)" if d["n_layers"] == full else str(d["n_layers"])
            lines.append(f"| wav2vec2-{size} | {n} | {d['params'] / 1e6:.1f} M | {d['ms']:.0f} ms "
                         f"| {d['speedup']:.2f}x | {d['mac_limit']:.2f}x | {d['efficiency']:.2f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["base", "large"], choices=["base", "large"])
    parser.add_argument("--tables", nargs="+", default=["norm", "plain", "depth"],
                        choices=["norm", "plain", "depth"])
    parser.add_argument("--depths", default="2,4,6,12", help="comma-separated N below full depth")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per attempt")
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="largest accepted control deviation from 1.00x")
    parser.add_argument("--max-attempts", type=int, default=3,
                        help="blocks of --repeats rounds at most, while the control is off")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--n-samples", type=int, default=UTTERANCE_SAMPLES)
    parser.add_argument("--wall-clock", action="store_true",
                        help="time wall-clock seconds even with one thread (default: that "
                             "thread's CPU time, blind to other processes' load)")
    parser.add_argument("--out", help="folder for overhead.md and overhead.json")
    parser.add_argument("--from-json", nargs="+",
                        help="re-print the tables of saved overhead.json files (merged in order)")
    return parser.parse_args(argv)


def main(argv=None):
    import transformers

    args = parse_args(argv)
    if args.from_json:
        result = {}
        for path in args.from_json:
            with open(path, encoding="utf-8") as fin:
                saved = json.load(fin)
            for key, value in saved.items():
                if isinstance(value, dict) and isinstance(result.get(key), dict):
                    result[key].update(value)
                else:
                    result.setdefault(key, value)
        print(markdown(result) + "\n\n" + readme_table(result))
        return 0
    torch.set_num_threads(args.threads)
    if args.threads == 1 and not args.wall_clock:
        CLOCK[0] = time.thread_time
    quiet_libraries()
    progress = progress_printer()
    depths = [int(d) for d in args.depths.split(",") if d.strip()]
    result = {"torch": torch.__version__, "transformers": transformers.__version__,
              "threads": torch.get_num_threads(), "seconds": args.n_samples / SAMPLE_RATE,
              "clock": "thread CPU time" if CLOCK[0] is time.thread_time else "wall time",
              "plain": {}, "depth": {}}
    budget = (args.repeats, args.tolerance, args.max_attempts, progress)
    if "norm" in args.tables:
        result["norm"] = norm_table(*budget)
    with tempfile.TemporaryDirectory(prefix="lobes-overhead-") as folder:
        for size in args.sizes if {"plain", "depth"} & set(args.tables) else ():
            progress(f"building random wav2vec2-{size}")
            source = save_random_model(folder, "wav2vec2", size)
            if "plain" in args.tables:
                progress(f"wav2vec2-{size}: full depth vs plain forward")
                result["plain"][size] = plain_table(source, *budget, args.n_samples)
            if "depth" in args.tables:
                progress(f"wav2vec2-{size}: depths")
                result["depth"][size] = depth_table(source, depths, *budget, args.n_samples)
            remove_tree(source)
    text = markdown(result)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "overhead.md"), "w", encoding="utf-8") as fout:
            fout.write(text + "\n")
        with open(os.path.join(args.out, "overhead.json"), "w", encoding="utf-8") as fout:
            json.dump(result, fout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
