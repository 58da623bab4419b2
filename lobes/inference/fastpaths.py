"""Ways to run a trained countermeasure's scoring graph: eager, compiled, ONNX.

``build_scorer(graph, precision, backend, device)`` wraps a
``lobes.inference.detector.ScoringGraph`` (SSL encoder, fusion, head; waveforms and
relative lengths -> bona fide logits) in one of:

- ``"eager"``: plain PyTorch, under ``torch.autocast`` for bf16/fp16, with
  dynamically quantised Linear layers for int8;
- ``"compile"``: the same, through ``torch.compile`` (Inductor). The first
  batch of each new input shape compiles (tens of seconds for a base model on
  a CPU), so it pays off for long scoring jobs at a fixed crop or window;
- ``"onnx"``: exported with ``torch.onnx.export`` (one graph per input
  length, exported on first use) and run by ONNX Runtime, in fp32 or with ONNX Runtime's dynamic int8
  MatMuls. Needs the ``onnx`` extra (``pip install -e .[onnx]``).

Unsupported combinations are refused with an error naming the options; a
precision the hardware lacks falls back as ``lobes.models.precision`` says.
"""

import logging
import os
import tempfile
import warnings

import torch

from lobes.models.precision import PRECISIONS, autocast, quantize_int8, resolve_precision

logger = logging.getLogger(__name__)

BACKENDS = ("eager", "compile", "onnx")
BACKEND_PRECISIONS = {
    "eager": ("fp32", "bf16", "fp16", "int8"),
    # Inductor cannot lower torch.ao's packed dynamic int8 Linear ops.
    "compile": ("fp32", "bf16", "fp16"),
    "onnx": ("fp32", "int8"),
}


def check_backend(backend, precision):
    """Refuses an unknown backend or a precision the backend cannot run.

    Example
    -------
    >>> check_backend("onnx", "bf16")
    Traceback (most recent call last):
    ...
    ValueError: backend='onnx' runs precision fp32 or int8, not 'bf16'; use backend='eager' or 'compile' for bf16
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend={backend!r}; choose from {', '.join(BACKENDS)}")
    allowed = BACKEND_PRECISIONS[backend]
    if precision in PRECISIONS and precision not in allowed:
        others = [b for b in BACKENDS if precision in BACKEND_PRECISIONS[b]]
        raise ValueError(
            f"backend={backend!r} runs precision {' or '.join(allowed)}, not {precision!r}; "
            f"use backend={' or '.join(repr(b) for b in others)} for {precision}"
        )


class TorchScorer:
    """Eager or ``torch.compile``-d scoring graph in the given precision.

    int8 quantises the graph's encoder Linear layers in place.
    """

    def __init__(self, graph, precision, device, compile=False):
        self.graph, self.precision, self.device = graph, precision, torch.device(device)
        self.backend = "compile" if compile else "eager"
        if precision == "int8":
            quantized, kept = quantize_int8(graph.ssl.encoder.model)
            logger.info("int8: %d Linear layers quantised, %d kept in fp32 (%s)",
                        len(quantized), len(kept), ", ".join(kept) or "none")
            self.kept_fp32 = kept
        self.forward = torch.compile(graph) if compile else graph

    def __call__(self, wavs, wav_lens):
        """Bona fide logits of a batch, at this scorer's precision, without gradients."""
        with torch.no_grad(), autocast(self.precision, self.device):
            return self.forward(wavs.to(self.device), wav_lens.to(self.device))


def export_onnx(graph, path, batch_size, n_samples):
    """Exports ``graph(wavs, wav_lens)`` to ONNX for (batch_size, n_samples) inputs.

    The shapes are fixed: the HF encoders' length arithmetic does not export
    with a symbolic length (torch.export specialises it), and a scoring job
    feeds one crop or window length anyway (``OnnxScorer`` pads the last
    batch and exports once per new length). Errors (a custom head the
    exporter cannot trace, say) are re-raised as ``ValueError`` naming the
    backend and the head. Returns ``path``.
    """
    graph = graph.eval()
    device = next(graph.parameters()).device
    example = (torch.zeros(int(batch_size), int(n_samples), device=device),
               torch.ones(int(batch_size), device=device))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph, example, str(path), dynamo=True, verbose=False,
                input_names=["wavs", "wav_lens"], output_names=["scores"],
            )
    except Exception as err:  # the exporter raises many types
        raise ValueError(
            f"backend='onnx': cannot export this model (encoder "
            f"{graph.ssl.encoder.config.model_type}, head {type(graph.head).__name__}): "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}; "
            "use backend='eager' or 'compile'"
        ) from err
    return str(path)


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise ValueError(
            "backend='onnx' needs onnxruntime and onnx: pip install -e .[onnx]"
        ) from err
    return onnxruntime


class OnnxScorer:
    """The scoring graph exported to ONNX and run by ONNX Runtime (CPU).

    One ONNX graph per input length, exported on first use for batches of
    ``batch_size``; smaller batches are padded with silent rows (scored and
    dropped), larger ones split.

    Arguments
    ---------
    graph : ScoringGraph
        The eager graph to export.
    precision : str
        ``"fp32"``, or ``"int8"``: ONNX Runtime dynamic quantisation of the
        MatMul weights (int8), activations quantised on the fly.
    device : str
        Must be the CPU.
    batch_size : int
        Batch size of the exported graphs.
    folder : str, optional
        Where to keep the ``.onnx`` files; a temporary folder, removed with
        the scorer, by default.
    """

    def __init__(self, graph, precision, device, batch_size=8, folder=None):
        self.ort = _onnxruntime()
        if torch.device(device).type != "cpu":
            raise ValueError(
                f"backend='onnx' runs on the CPU here (device is {device}); "
                "use backend='eager' or 'compile' with fp16/bf16 on a GPU"
            )
        self.graph, self.batch_size = graph, int(batch_size)
        self.precision, self.backend, self.device = precision, "onnx", torch.device(device)
        if folder is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="lobes-onnx-")
            folder = self._tmp.name
        os.makedirs(folder, exist_ok=True)
        self.folder, self.sessions = folder, {}

    def session(self, n_samples):
        """The ONNX Runtime session for inputs of ``n_samples`` (exported on first use)."""
        if n_samples in self.sessions:
            return self.sessions[n_samples]
        path = os.path.join(self.folder, f"scoring-b{self.batch_size}-s{n_samples}.onnx")
        export_onnx(self.graph, path, self.batch_size, n_samples)
        if self.precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = path.replace(".onnx", ".int8.onnx")
            quantize_dynamic(path, quantized, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"])
            path = quantized
        options = self.ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3  # keep ONNX Runtime's graph notes off stderr
        self.sessions[n_samples] = self.ort.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        return self.sessions[n_samples]

    def __call__(self, wavs, wav_lens):
        """Bona fide logits of a batch from the ONNX Runtime session of its length."""
        wavs, wav_lens = wavs.float().cpu(), wav_lens.float().cpu()
        session, scores = self.session(wavs.shape[1]), []
        for first in range(0, wavs.shape[0], self.batch_size):
            chunk, lens = wavs[first : first + self.batch_size], wav_lens[first : first + self.batch_size]
            real = chunk.shape[0]
            if real < self.batch_size:
                pad = self.batch_size - real
                chunk = torch.cat([chunk, chunk.new_zeros(pad, chunk.shape[1])])
                lens = torch.cat([lens, lens.new_ones(pad)])
            out = session.run(None, {"wavs": chunk.numpy(), "wav_lens": lens.numpy()})[0]
            scores.append(torch.from_numpy(out[:real]))
        return torch.cat(scores)


def build_scorer(graph, precision="fp32", backend="eager", device="cpu", batch_size=8,
                 onnx_folder=None):
    """A callable ``(wavs, wav_lens) -> scores`` running ``graph`` as asked.

    The returned scorer's ``precision`` is what really runs (bf16 may fall
    back to fp32, with a warning); ``backend`` is the backend used.

    Example
    -------
    >>> build_scorer(None, "fp64")
    Traceback (most recent call last):
    ...
    ValueError: unknown precision='fp64'; choose from fp32, bf16, fp16, int8
    >>> build_scorer(None, "fp32", "tensorrt")
    Traceback (most recent call last):
    ...
    ValueError: unknown backend='tensorrt'; choose from eager, compile, onnx
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision={precision!r}; choose from {', '.join(PRECISIONS)}")
    check_backend(backend, precision)
    precision = resolve_precision(precision, device)
    if backend == "onnx":
        return OnnxScorer(graph, precision, device, batch_size, onnx_folder)
    return TorchScorer(graph, precision, device, compile=backend == "compile")
