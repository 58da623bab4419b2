"""The truncated weighted-layer SSL encoder against the untruncated HF models."""

import json
import os

import pytest
import torch
import torch.nn.functional as F
from conftest import MODEL_FORMS
from transformers import AutoModel, BertConfig

from lobes.models.ssl import LayerwiseSSL

FORM_IDS = [f"{m}-{'large' if s else 'base'}" for m, s in MODEL_FORMS]


def reference_model(path):
    """The full 4-layer model, loaded by HF directly, in eval mode."""
    return AutoModel.from_pretrained(path).eval()


def waveforms(batch=2, samples=8000, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, samples, generator=generator)


def reference_input(ssl, wavs):
    """What the HF model itself would be given (normalised when configured)."""
    if ssl.encoder.normalize_waveform:
        return F.layer_norm(wavs, wavs.shape[1:], eps=1e-7)
    return wavs


@pytest.mark.parametrize("form", MODEL_FORMS, ids=FORM_IDS)
@pytest.mark.parametrize("n_layers", [1, 3])
def test_layers_are_the_untruncated_models_raw_layers(tiny_models, form, n_layers):
    ssl = LayerwiseSSL(tiny_models[form], n_layers=n_layers)
    wavs = waveforms()
    stacked = ssl.layer_outputs(wavs)
    with torch.no_grad():
        hidden = reference_model(tiny_models[form])(
            reference_input(ssl, wavs), output_hidden_states=True
        ).hidden_states
    assert stacked.shape == (2, n_layers, 24, 32)
    for k in range(1, n_layers + 1):  # layer k (1-based) is hidden_states[k] below the top
        torch.testing.assert_close(stacked[:, k - 1], hidden[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model_type", ["wav2vec2", "hubert", "wavlm"])
def test_full_depth_stable_ln_model_fuses_the_raw_last_layer(tiny_models, model_type):
    path = tiny_models[(model_type, True)]
    ssl = LayerwiseSSL(path, n_layers=4)
    wavs = waveforms()
    stacked = ssl.layer_outputs(wavs)
    reference = reference_model(path)
    with torch.no_grad():
        last = reference(reference_input(ssl, wavs)).last_hidden_state
    final_norm = reference.encoder.layer_norm
    # The model's own output is LayerNorm(raw layer 4); we must fuse the raw one.
    assert not torch.allclose(stacked[:, -1], last, atol=1e-3)
    with torch.no_grad():
        torch.testing.assert_close(final_norm(stacked[:, -1]), last, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("form", [("wav2vec2", False), ("wavlm", True)], ids=["base", "large"])
def test_cnn_output_option_prepends_hidden_state_zero(tiny_models, form):
    ssl = LayerwiseSSL(tiny_models[form], n_layers=2, include_cnn_output=True)
    wavs = waveforms()
    stacked = ssl.layer_outputs(wavs)
    with torch.no_grad():
        hidden = reference_model(tiny_models[form])(
            reference_input(ssl, wavs), output_hidden_states=True
        ).hidden_states
    assert stacked.shape[1] == 3
    torch.testing.assert_close(stacked[:, 0], hidden[0], rtol=1e-4, atol=1e-5)
    assert len(ssl.layer_weights()) == 3


def test_truncation_builds_fewer_layers_and_parameters(tiny_models):
    path = tiny_models[("wavlm", True)]
    counts = {}
    for n_layers in (1, 2, 4):
        ssl = LayerwiseSSL(path, n_layers=n_layers)
        assert len(ssl.encoder.model.encoder.layers) == n_layers
        assert ssl.encoder.model.config.num_hidden_layers == n_layers
        counts[n_layers] = sum(p.numel() for p in ssl.encoder.parameters())
    per_layer = counts[2] - counts[1]
    assert per_layer > 0
    assert counts[4] - counts[2] == 2 * per_layer


@pytest.mark.parametrize("n_layers", [0, 5])
def test_depth_outside_the_model_is_a_clear_error(tiny_models, n_layers):
    with pytest.raises(ValueError, match=r"n_layers=%d is outside 1\.\.4" % n_layers):
        LayerwiseSSL(tiny_models[("hubert", False)], n_layers=n_layers)


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="looks like a local folder but does not exist"):
        LayerwiseSSL(str(tmp_path / "no_model"), n_layers=2)


def test_unsupported_model_type_is_a_clear_error(tmp_path):
    folder = tmp_path / "bert"
    BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2).save_pretrained(folder)
    with pytest.raises(ValueError, match="model_type 'bert'; supported: wav2vec2, hubert, wavlm"):
        LayerwiseSSL(str(folder), n_layers=1)


@pytest.mark.parametrize("form", MODEL_FORMS, ids=FORM_IDS)
def test_frozen_encoder_is_deterministic_in_train_mode(tiny_models, form):
    # The tiny configs enable dropout, LayerDrop and SpecAugment masking.
    ssl = LayerwiseSSL(tiny_models[form], n_layers=4)
    wavs = waveforms()
    ssl.train()
    assert ssl.training and ssl.fusion.training
    assert not ssl.encoder.model.training
    first = ssl.layer_outputs(wavs)
    second = ssl.layer_outputs(wavs)
    ssl.eval()
    evaluated = ssl.layer_outputs(wavs)
    assert torch.equal(first, second)
    assert torch.equal(first, evaluated)
    trainable = {n for n, p in ssl.named_parameters() if p.requires_grad}
    assert trainable == {"fusion.weight_logits", "fusion.norm.weight", "fusion.norm.bias"}


def test_fine_tuning_trains_the_transformer_without_layerdrop(tiny_models):
    ssl = LayerwiseSSL(tiny_models[("wav2vec2", False)], n_layers=4, freeze=False)
    ssl.train()
    assert ssl.encoder.model.training
    assert ssl.encoder.model.config.layerdrop == 0.0
    trainable = [n for n, p in ssl.named_parameters() if p.requires_grad]
    assert any(n.startswith("encoder.model.encoder.layers.3.") for n in trainable)
    assert not any("feature_extractor" in n for n in trainable)  # kept frozen by default
    for _ in range(5):  # LayerDrop would drop entries from the stack
        assert ssl.layer_outputs(waveforms()).shape[1] == 4
    feats, _ = ssl(waveforms())
    feats.sum().backward()
    layer_grad = ssl.encoder.model.encoder.layers[0].feed_forward.output_dense.weight.grad
    assert layer_grad is not None and layer_grad.abs().sum() > 0


def test_fine_tuning_can_train_the_feature_extractor_too(tiny_models):
    ssl = LayerwiseSSL(
        tiny_models[("hubert", True)], n_layers=2, freeze=False, freeze_feature_extractor=False
    )
    assert any(
        "feature_extractor" in n for n, p in ssl.named_parameters() if p.requires_grad
    )


@pytest.mark.parametrize("form", MODEL_FORMS, ids=FORM_IDS)
def test_fine_tuning_gives_every_trainable_parameter_a_gradient(tiny_models, form):
    """DDP fails at the second step when a trainable parameter gets no
    gradient (``find_unused_parameters``): fine-tuning must train only what
    the fused layers depend on (not SpecAugment's mask embedding, nor the
    LayerNorm large models apply after their last layer)."""
    ssl = LayerwiseSSL(tiny_models[form], n_layers=2, freeze=False, freeze_feature_extractor=False).train()
    feats, _ = ssl(waveforms(), torch.tensor([1.0, 0.6]))
    feats.sum().backward()
    assert [n for n, p in ssl.named_parameters() if p.requires_grad and p.grad is None] == []


@pytest.mark.parametrize("form", [("wavlm", True), ("hubert", False)], ids=["large", "base"])
def test_fine_tuning_optimizer_lists_the_parameters_it_always_did(tiny_models, form):
    """Runs fine-tuned before the unused parameters were frozen saved an
    optimizer over every encoder parameter but the CNN's: to resume them,
    the optimizer still lists those, in the same order (frozen ones get no
    gradient, which Adam skips)."""
    from types import SimpleNamespace

    from lobes.models.branches import BranchModel
    from lobes.models.heads import FFNHead
    from lobes.training.brain import SpoofBrain

    ssl = LayerwiseSSL(tiny_models[form], n_layers=2, freeze=False)
    head = FFNHead(ssl.output_size)
    state = SimpleNamespace(model=BranchModel(ssl.fusion, head), checkpointer=None)
    brain = SimpleNamespace(opt_class=torch.optim.Adam, ssl=ssl, states={".": state}, checkpointer=None)
    SpoofBrain.init_optimizers(brain)
    expected = [p for n, p in ssl.named_parameters() if ".feature_extractor." not in n] + list(head.parameters())
    assert [id(p) for p in state.optimizer.param_groups[0]["params"]] == [id(p) for p in expected]
    assert brain.optimizers_dict == {"opt_class": state.optimizer}


def test_a_hub_id_loads_offline_from_the_cache(tiny_ssl, hub_ssl_cache, monkeypatch):
    """ssl_source as users write it (a hub id), served by the hub cache with
    no network; an id the cache lacks is a clear error."""
    import huggingface_hub.constants
    from conftest import HUB_SSL_ID

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_ssl_cache))
    from_hub = LayerwiseSSL(HUB_SSL_ID, n_layers=2).eval()
    local = LayerwiseSSL(tiny_ssl, n_layers=2).eval()
    with torch.no_grad():
        torch.testing.assert_close(from_hub.layer_outputs(waveforms()), local.layer_outputs(waveforms()))
    with pytest.raises(ValueError, match="Cannot load SSL model 'lobes-test/not-cached'"):
        LayerwiseSSL("lobes-test/not-cached", n_layers=2)


@pytest.mark.parametrize("form", MODEL_FORMS, ids=FORM_IDS)
def test_padding_does_not_change_real_frames(tiny_models, form):
    """A padded batch must match the utterance alone on its real frames: the
    attention is masked, and so is the first CNN GroupNorm of base models."""
    ssl = LayerwiseSSL(tiny_models[form], n_layers=3).eval()
    short = waveforms(batch=1, samples=6400, seed=1)
    long = waveforms(batch=1, samples=16000, seed=2)
    padded = torch.cat([F.pad(short, (0, 16000 - 6400)), long])
    lens = torch.tensor([6400 / 16000, 1.0])
    with torch.no_grad():
        alone, alone_lens = ssl(short)
        batched, batch_lens = ssl(padded, lens)
    n_frames = alone.shape[1]
    assert round(float(batch_lens[0]) * batched.shape[1]) == n_frames
    torch.testing.assert_close(batched[0, :n_frames], alone[0], rtol=1e-4, atol=1e-4)
    assert torch.all(batched[0, n_frames:] == 0)


def test_group_norm_masking_keeps_the_pretrained_weights(tiny_models):
    ssl = LayerwiseSSL(tiny_models[("hubert", False)], n_layers=1, freeze=False,
                       freeze_feature_extractor=False)
    norm = ssl.encoder.model.feature_extractor.conv_layers[0].layer_norm
    reference = reference_model(tiny_models[("hubert", False)])
    reference_norm = reference.feature_extractor.conv_layers[0].layer_norm
    torch.testing.assert_close(norm.weight, reference_norm.weight)
    assert norm.weight.requires_grad
    assert "encoder.model.feature_extractor.conv_layers.0.layer_norm.weight" in ssl.state_dict()


def test_waveform_normalisation_follows_the_feature_extractor_config(tiny_models, tmp_path):
    assert LayerwiseSSL(tiny_models[("wav2vec2", True)], 1).encoder.normalize_waveform
    assert not LayerwiseSSL(tiny_models[("wav2vec2", False)], 1).encoder.normalize_waveform
    assert not LayerwiseSSL(
        tiny_models[("wav2vec2", True)], 1, normalize_waveform=False
    ).encoder.normalize_waveform
    # Normalisation makes the features independent of the input gain.
    ssl = LayerwiseSSL(tiny_models[("wavlm", True)], 2).eval()
    wavs = waveforms()
    with torch.no_grad():
        torch.testing.assert_close(ssl(wavs)[0], ssl(7.0 * wavs)[0], rtol=1e-3, atol=1e-3)
    config = json.loads(open(os.path.join(tiny_models[("wavlm", True)], "preprocessor_config.json")).read())
    assert config["do_normalize"] is True


def test_frozen_checkpoint_holds_only_the_fusion(tiny_models, tmp_path):
    ssl = LayerwiseSSL(tiny_models[("wavlm", False)], n_layers=2)
    with torch.no_grad():
        ssl.fusion.weight_logits.copy_(torch.tensor([0.0, 2.0]))
    ssl._save(tmp_path / "ssl.ckpt")
    state = torch.load(tmp_path / "ssl.ckpt", weights_only=True)
    assert all(key.startswith("fusion.") for key in state)
    restored = LayerwiseSSL(tiny_models[("wavlm", False)], n_layers=2)
    restored._load(tmp_path / "ssl.ckpt")
    torch.testing.assert_close(restored.layer_weights(), ssl.layer_weights())
    assert restored.layer_weights()[1] > 0.8

    finetuned = LayerwiseSSL(tiny_models[("wavlm", False)], n_layers=2, freeze=False)
    finetuned._save(tmp_path / "full.ckpt")
    with pytest.raises(RuntimeError, match="saved with freeze_ssl=False"):
        restored._load(tmp_path / "full.ckpt")


class _Payload:
    """Unpickling this would run code: weights-only loading must refuse it."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoints_are_loaded_weights_only(tiny_models, tmp_path):
    from lobes.utils.safe_checkpoints import UnsafeCheckpointError

    ssl = LayerwiseSSL(tiny_models[("wavlm", False)], n_layers=1)
    path = tmp_path / "evil.ckpt"
    torch.save({"fusion.weight_logits": _Payload()}, path)
    with pytest.raises(UnsafeCheckpointError, match="evil.ckpt: refused to load: it is not a plain tensor archive"):
        ssl._load(path)
