"""Reduced-precision execution of the frozen SSL encoder: bf16, fp16, int8.

The encoder (CNN front-end and transformer layers) is where the time goes;
the layer fusion and the heads are tiny and stay in fp32 for stability
(``full_precision``). bf16 and fp16 run the encoder under
``torch.autocast``, which is also what SpeechBrain's ``--precision=bf16``
does around a whole training step; int8 replaces the encoder's Linear layers
by dynamically quantised ones (``torch.ao``; CPU only).

Hardware support is checked, never assumed: bf16 on a CPU without native
bf16 instructions (AVX-512 BF16 or AMX) is emulated and much slower than
fp32, so it falls back to fp32 with a warning, and fp16 needs a GPU.
"""

import functools
import logging
import warnings

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionFallbackWarning(UserWarning):
    """A requested precision runs as fp32 because the hardware lacks it."""


def cpu_has_native_bf16():
    """True if this CPU has bf16 instructions (AVX-512 BF16 or AMX tiles).

    torch only exposes this through private helpers; without them the
    answer is False (the safe side: fp32 is never slower than emulated bf16).
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def bf16_supported(device):
    """Whether bf16 runs natively (fast) on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bf16()


def resolve_precision(precision, device, option="precision"):
    """The precision that will really run on ``device``; errors name ``option``.

    ``bf16`` without hardware support falls back to ``fp32`` with a
    ``PrecisionFallbackWarning`` (and a log line). ``fp16`` off a GPU and
    ``int8`` on a GPU are refused: there is no fast kernel to fall back on.

    Example
    -------
    >>> resolve_precision("fp32", "cpu")
    'fp32'
    >>> resolve_precision("fp16", "cpu")
    Traceback (most recent call last):
    ...
    ValueError: precision='fp16' needs a CUDA GPU (device is cpu); use bf16 or int8 on a CPU
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown {option}={precision!r}; choose from {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"{option}='fp16' needs a CUDA GPU (device is {device}); use bf16 or int8 on a CPU"
        )
    if precision == "int8" and device.type != "cpu":
        raise ValueError(
            f"{option}='int8' (dynamic int8 Linear layers) runs on the CPU only "
            f"(device is {device}); use fp16 or bf16 on a GPU"
        )
    if precision == "bf16" and not bf16_supported(device):
        what = "this GPU" if device.type == "cuda" else "this CPU (no AVX-512 BF16 or AMX)"
        message = (
            f"{option}='bf16' requested but {what} has no native bf16 support; "
            "emulated bf16 is slower than fp32, so fp32 is used instead"
        )
        warnings.warn(message, PrecisionFallbackWarning, stacklevel=2)
        logger.warning(message)
        return "fp32"
    return precision


def autocast(precision, device):
    """``torch.autocast`` context for bf16/fp16; a no-op for fp32 and int8."""
    device_type = torch.device(device).type
    dtype = AUTOCAST_DTYPES.get(precision)
    return torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None)


def full_precision(forward):
    """Decorator: run a module's ``forward`` in fp32, outside any autocast.

    Floating-point tensor arguments are cast to fp32. Used for the fusion
    and the heads, which cost little and train more stably in fp32 while
    the frozen encoder runs in bf16/fp16.

    Example
    -------
    >>> class Square(nn.Module):
    ...     @full_precision
    ...     def forward(self, x):
    ...         return x @ x
    >>> with torch.autocast("cpu", dtype=torch.bfloat16):
    ...     Square()(torch.eye(2, dtype=torch.bfloat16)).dtype
    torch.float32
    """

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        def to_fp32(value):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                return value.float()
            return value

        args = [to_fp32(a) for a in args]
        kwargs = {k: to_fp32(v) for k, v in kwargs.items()}
        device_type = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
        with torch.autocast(device_type, enabled=False):
            return forward(self, *args, **kwargs)

    return wrapper


def ambient_autocast_dtype(device_type):
    """The dtype of an active autocast on ``device_type``, or None."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def _linear_layers_read_directly(model):
    """Names of Linear layers whose parent reads ``.weight``/``.bias`` itself.

    WavLM's attention passes ``q_proj.weight``, ``q_proj.bias`` ... straight
    to ``F.multi_head_attention_forward`` instead of calling the layers, so
    a quantised replacement (which has packed weights, no ``.bias``
    tensor) would break it. Those projections stay in fp32.
    """
    skipped = set()
    for name, module in model.named_modules():
        if type(module).__name__ == "WavLMAttention":
            skipped.update(f"{name}.{p}" for p in ("q_proj", "k_proj", "v_proj", "out_proj"))
    return skipped


def quantize_int8(model):
    """Replaces the safe Linear layers of ``model`` by dynamic int8 ones, in place.

    Weights are int8 per output channel, activations are quantised on the
    fly per batch; convolutions (the CNN front-end) and norms stay fp32, as
    ``torch.ao`` has no dynamic int8 convolution. Returns
    ``(quantised, kept)``: the names of the layers quantised and of those
    left in fp32 (WavLM's attention projections, see above).

    Example
    -------
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> quantized, kept = quantize_int8(model)
    >>> quantized, kept
    (['0', '2'], [])
    """
    kept = _linear_layers_read_directly(model)
    targets = [
        name for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name not in kept
    ]
    if not targets:
        raise ValueError(f"precision='int8': {type(model).__name__} has no Linear layer to quantise")
    with warnings.catch_warnings():
        # torch.ao's dynamic quantisation is deprecated in favour of torchao,
        # which is not installed; it is still the maintained CPU path in torch.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*")
        warnings.filterwarnings("ignore", message="torch.quantize_per_tensor")
        torch.ao.quantization.quantize_dynamic(
            model, {name: torch.ao.quantization.default_dynamic_qconfig for name in targets},
            dtype=torch.qint8, inplace=True,
        )
    return targets, sorted(kept)
