"""Helpers shared by the speed benchmarks: real-size random models, timing,
memory and multiply-accumulate counts.

Random weights cost the same time as trained ones, so every benchmark builds
its models locally (``save_random_model``, through ``lobes.testing.tiny_models``) and
nothing is downloaded. Imports stay light (torch and transformers only), so
that ``gpu.py`` runs where speechbrain is not installed.
"""

import json
import os
import shutil
import statistics
import time

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModel
from transformers.utils import logging as transformers_logging

from lobes.testing.tiny_models import TINY_MODELS, save_random_ssl

SAMPLE_RATE = 16000
UTTERANCE_SAMPLES = 64600  # the paper's crop, about 4.04 s
ARCHITECTURES = TINY_MODELS  # model type -> (config class, model class)
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
METRICS = ("params", "gmac_per_s", "latency_ms", "utt_per_s", "rtf", "peak_mb")


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
    """Saves a randomly initialised real-size model (``lobes.testing.tiny_models``);
    returns its folder.

    The folder is loaded by ``TruncatedSSLEncoder`` exactly like a
    downloaded checkpoint, so the benchmarks time the project's own
    encoder, not a stand-in.
    """
    config = full_size_config(model_type, size)
    return save_random_ssl(folder, f"{model_type}-{size}", config, seed)


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


def depth_of(source):
    """Number of transformer layers of a saved model."""
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


def interleaved_times(calls, repeats, warmup=1, clock=time.perf_counter):
    """Wall times (s) of each callable, ``repeats`` rounds interleaved.

    Each round runs every callable once, in turn (the order rotated by one
    each round), so that load from other processes falls on all of them
    alike; compare medians. ``clock=time.thread_time`` counts the CPU time
    of this thread only: with one torch thread, that is all the work, and
    time spent waiting while other processes hold the cores is left out. Put the same
    callable in twice under two names as a control: their ratio must read
    1.00 (within the noise) for the other ratios to mean anything.

    Example
    -------
    >>> times = interleaved_times({"a": lambda: None, "b": lambda: None}, repeats=3)
    >>> sorted(times), len(times["a"])
    (['a', 'b'], 3)
    """
    times = {name: [] for name in calls}
    names = list(calls)
    for round_ in range(warmup + repeats):
        # Each round starts one row later: no row always follows the same
        # one (what ran before changes caches and the allocator's state).
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = clock()
            calls[name]()
            if round_ >= warmup:
                times[name].append(clock() - start)
    return times


def median(values):
    """Median of a list of timings."""
    return statistics.median(values)


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)


def quiet_libraries():
    """Silences per-model progress bars and logs so the progress lines stay readable."""
    import logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    logging.getLogger("speechbrain.integrations.huggingface.huggingface").setLevel(logging.ERROR)


def progress_printer(stream=None):
    """``progress(message)`` printing elapsed seconds and the message to stderr."""
    import sys

    start = time.perf_counter()
    stream = stream or sys.stderr

    def progress(message):
        print(f"[{time.perf_counter() - start:6.0f} s] {message}", file=stream, flush=True)

    return progress


def add_model_arguments(parser):
    """The options every random-model speed script takes."""
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES),
                        choices=list(ARCHITECTURES))
    parser.add_argument("--sizes", nargs="+", default=["base", "large"], choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed batch-1 forwards (best kept); half as many batches")
    parser.add_argument("--batch-size", type=int, default=8, help="throughput batch size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser


def start_run(args, say_versions=True):
    """Sets the thread count, quiets the libraries; returns a progress printer."""
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_libraries()
    if say_versions:
        print(f"torch {torch.__version__}, device {args.device}, "
              f"{torch.get_num_threads()} CPU threads", flush=True)
    return progress_printer()
