"""bf16 / int8 / compiled / ONNX scoring paths on tiny models: tolerances, refusals, fallbacks.

Timings are never tested here (see benchmarks/fast_paths.py).
"""

import copy
import warnings

import pytest
import torch
import torch.nn as nn
from conftest import MODEL_FORMS

import lobes.models.precision as precision_module
from lobes.inference.detector import ScoringGraph
from lobes.inference.fastpaths import build_scorer, check_backend
from lobes.models.heads import FFNHead
from lobes.models.precision import PrecisionFallbackWarning, full_precision, resolve_precision
from lobes.models.ssl import LayerwiseSSL

BF16_ATOL = 1e-1  # bf16 keeps 8 bits of mantissa: about 3 significant digits per op
INT8_ATOL = 5e-2  # dynamic int8 Linear layers (per-tensor activations, 8-bit weights)


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend this CPU has bf16 instructions, so that bf16 really runs (emulated)."""
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)


@pytest.fixture
def no_native_bf16(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)


def scoring_graph(path, n_layers=2):
    torch.manual_seed(0)
    ssl = LayerwiseSSL(path, n_layers=n_layers)
    head = FFNHead(ssl.output_size)
    # A random head gives logits near 0; scale its classifier so that the
    # tolerances are tested on logits of a realistic size (a few units).
    with torch.no_grad():
        head.classifier[-1].weight.mul_(30.0)
    return ScoringGraph(ssl, head).eval()


def batch():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(3, 16000, generator=generator), torch.tensor([1.0, 0.7, 0.4])


@pytest.mark.parametrize("form", MODEL_FORMS, ids=lambda f: f"{f[0]}-{'large' if f[1] else 'base'}")
def test_bf16_and_int8_within_tolerance_for_every_model_form(tiny_models, form, native_bf16):
    graph = scoring_graph(tiny_models[form])
    wavs, lens = batch()
    reference = build_scorer(graph, "fp32")(wavs, lens)
    assert reference.abs().max() > 0.3  # logits large enough for the tolerances to mean something

    bf16 = build_scorer(copy.deepcopy(graph), "bf16")
    assert bf16.precision == "bf16"
    scores = bf16(wavs, lens)
    assert scores.dtype == torch.float32  # the head ran in fp32
    torch.testing.assert_close(scores, reference, atol=BF16_ATOL, rtol=0)
    assert not torch.equal(scores, reference)  # bf16 really ran

    int8 = build_scorer(copy.deepcopy(graph), "int8")
    torch.testing.assert_close(int8(wavs, lens), reference, atol=INT8_ATOL, rtol=0)
    quantized = [m for m in int8.graph.modules() if type(m).__module__.startswith("torch.ao")]
    assert quantized, "no Linear layer was quantised"
    if form[0] == "wavlm":
        # Its attention reads q/k/v/out_proj weights directly: kept in fp32.
        assert len(int8.kept_fp32) == 4 * 2 and all("_proj" in n for n in int8.kept_fp32)
    else:
        assert int8.kept_fp32 == []


@pytest.mark.export
def test_onnx_export_matches_eager(tiny_models):
    # WavLM large form: the relative position bias and the pre-LN layers export too.
    graph = scoring_graph(tiny_models[("wavlm", True)])
    wavs, lens = batch()
    reference = build_scorer(graph, "fp32")(wavs, lens)
    onnx = build_scorer(copy.deepcopy(graph), "fp32", "onnx", batch_size=2)
    # 3 rows with batch 2: one full batch, one padded; padding rows are dropped.
    scores = onnx(wavs, lens)
    torch.testing.assert_close(scores, reference, atol=1e-4, rtol=0)
    assert list(onnx.sessions) == [16000]


@pytest.mark.export
def test_compiled_graph_matches_eager(tiny_models):
    graph = scoring_graph(tiny_models[("wav2vec2", False)], n_layers=1)
    wavs, lens = batch()
    reference = build_scorer(graph, "fp32")(wavs, lens)
    compiled = build_scorer(graph, "fp32", "compile")
    assert compiled.backend == "compile"
    torch.testing.assert_close(compiled(wavs, lens), reference, atol=1e-4, rtol=0)


def test_bf16_falls_back_to_fp32_with_a_warning(tiny_models, no_native_bf16):
    graph = scoring_graph(tiny_models[("hubert", False)])
    wavs, lens = batch()
    with pytest.warns(PrecisionFallbackWarning, match="no native bf16 support.*fp32 is used"):
        scorer = build_scorer(graph, "bf16")
    assert scorer.precision == "fp32"
    torch.testing.assert_close(scorer(wavs, lens), build_scorer(graph, "fp32")(wavs, lens))


def test_encoder_under_speechbrain_bf16_autocast(tiny_models, no_native_bf16, monkeypatch):
    """--precision=bf16 wraps SpeechBrain's whole training step in autocast."""
    ssl = LayerwiseSSL(tiny_models[("wav2vec2", True)], n_layers=2)
    wavs, lens = batch()
    with torch.no_grad():
        reference, _ = ssl(wavs, lens)
        # Without native bf16 the encoder says so once and runs in fp32.
        with pytest.warns(PrecisionFallbackWarning, match="--precision='bf16'"):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                fallback, _ = ssl(wavs, lens)
        with warnings.catch_warnings():
            warnings.simplefilter("error", PrecisionFallbackWarning)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                ssl(wavs, lens)  # no second warning
        torch.testing.assert_close(fallback, reference)
        # With native bf16 the encoder runs in bf16; the fusion still gives fp32.
        monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            layers = ssl.layer_outputs(wavs, lens)
            fused, _ = ssl(wavs, lens)
    assert layers.dtype == torch.bfloat16 and fused.dtype == torch.float32
    # Fused features (BatchNorm-scaled, not logits): a looser bound than on logits.
    torch.testing.assert_close(fused, reference, atol=3 * BF16_ATOL, rtol=0)


def test_heads_and_fusion_run_in_fp32_under_autocast():
    head = FFNHead(8)
    x = torch.randn(2, 5, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(x.bfloat16(), torch.tensor([1.0, 0.6]))
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, head(x.bfloat16().float(), torch.tensor([1.0, 0.6])))


@pytest.mark.parametrize("precision, backend, device, message", [
    ("fp64", "eager", "cpu", "unknown precision='fp64'"),
    ("fp32", "tvm", "cpu", "unknown backend='tvm'"),
    ("fp16", "eager", "cpu", "precision='fp16' needs a CUDA GPU"),
    ("int8", "eager", "cuda", "precision='int8' .* runs on the CPU only"),
    ("bf16", "onnx", "cpu", "backend='onnx' runs precision fp32 or int8, not 'bf16'"),
    ("int8", "compile", "cpu", "backend='compile' runs precision fp32 or bf16 or fp16, not 'int8'"),
])
def test_refusals_name_the_option(precision, backend, device, message):
    with pytest.raises(ValueError, match=message):
        build_scorer(None, precision, backend, device)


@pytest.mark.export
def test_onnx_refuses_a_gpu_and_an_untraceable_head(tiny_models):
    graph = scoring_graph(tiny_models[("wav2vec2", False)], n_layers=1)
    with pytest.raises(ValueError, match="backend='onnx' runs on the CPU"):
        build_scorer(graph, "fp32", "onnx", "cuda")

    class DataDependentHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(32, 2)

        @full_precision
        def forward(self, x, lengths=None):
            logits = self.linear(x.mean(dim=1))
            if logits.sum() > 0:  # Python control flow on a value: not exportable
                return logits
            return -logits

    custom = ScoringGraph(graph.ssl, DataDependentHead()).eval()
    scorer = build_scorer(custom, "fp32", "onnx", batch_size=1)
    with pytest.raises(ValueError, match="backend='onnx': cannot export .* head DataDependentHead"):
        scorer(*[t[:1] for t in batch()])


def test_resolve_precision_keeps_what_the_hardware_runs(native_bf16):
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("int8", "cpu") == "int8"
    check_backend("eager", "int8")  # no error
