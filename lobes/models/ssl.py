"""A self-supervised speech encoder cut to its first N transformer layers.

Only the first N layers are built and loaded, so parameters and compute drop
with N (the paper's code ran the full model and sliced afterwards). Layer
outputs are captured with forward hooks on the transformer layers themselves,
so "layer k" always means the raw output of the k-th layer, whatever the
transformers version does with ``hidden_states`` and the final LayerNorm of
"stable layer norm" models.
"""

import contextlib
import json
import logging
import os

import torch
import torch.nn as nn
from speechbrain.integrations.huggingface.huggingface import HFTransformersInterface
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model, WavLMConfig, WavLMModel
from transformers.utils import logging as transformers_logging

from lobes.models.heads.pooling import frame_mask
from lobes.models.layer_sum import WeightedLayerSum
from lobes.models.precision import ambient_autocast_dtype, bf16_supported, resolve_precision
from lobes.utils.run_folder import SINGLE_RUN
from lobes.utils.safe_checkpoints import load_tensor_archive

logger = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm")
# Config and model classes of each supported model type (building an encoder
# from a plain config, as release folders and the test fixtures do).
SSL_CLASSES = {
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
    "hubert": (HubertConfig, HubertModel),
    "wavlm": (WavLMConfig, WavLMModel),
}


def looks_like_local_path(source):
    """True if ``source`` is meant as a folder rather than a hub id."""
    return (
        os.path.isabs(source)
        or source.startswith((".", "~"))
        or source.count("/") > 1
        or os.path.exists(source)
    )


def _hf_cache_dir():
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


class LengthMaskedGroupNorm(nn.GroupNorm):
    """Per-channel GroupNorm over the real frames of each utterance only.

    Base ("group norm") models normalise each channel of their first CNN
    layer over the whole signal, so zero padding shifts the features of
    real frames. Set ``lengths`` (frames, (B,)) before a forward pass to
    compute the statistics over real frames only; ``None`` behaves exactly
    like the ``nn.GroupNorm`` it replaces (same parameters).

    Example
    -------
    >>> norm = LengthMaskedGroupNorm(2, 2)
    >>> x = torch.randn(1, 2, 5)
    >>> padded = torch.cat([x, torch.zeros(1, 2, 3)], dim=2)
    >>> norm.lengths = torch.tensor([5])
    >>> torch.allclose(norm(padded)[..., :5], nn.GroupNorm(2, 2)(x), atol=1e-5)
    True
    """

    lengths = None

    def forward(self, x):
        """Normalises (B, C, T) with statistics over ``t < lengths[b]``."""
        if self.lengths is None:
            return super().forward(x)
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            # torch.compile / torch.export (ONNX): no data-dependent slicing.
            return self._masked_traceable(x)
        lengths = self.lengths.tolist()  # one device sync for the batch
        n_frames = x.shape[-1]
        if min(lengths) >= n_frames:  # nothing padded: the plain kernel
            return super().forward(x)
        # Statistics over thousands of frames: in fp32 even under bf16/fp16
        # autocast (as nn.GroupNorm does internally), output in x's dtype.
        dtype, x = x.dtype, x.float()
        stats = [self._real_frame_moments(x[b, :, : min(n, n_frames)]) for b, n in enumerate(lengths)]
        mean = torch.stack([m for m, _ in stats])
        scale = torch.rsqrt(torch.stack([v for _, v in stats]) + self.eps)
        if self.affine:
            scale = scale * self.weight
        shift = -mean * scale
        if self.affine:
            shift = shift + self.bias
        # One fused pass writes the output: x * scale + shift, per (b, c).
        return torch.addcmul(shift[..., None], x, scale[..., None]).to(dtype)

    @staticmethod
    def _real_frame_moments(frames, chunk=2048):
        """Per-channel mean and variance of a (C, L) view, without copying it.

        Two read-only passes (the mean, then squares centred on it, a
        cache-sized chunk at a time): as exact as the textbook two-pass
        formula, at about the cost of nn.GroupNorm's own statistics. A single
        sum/sum-of-squares pass would cancel catastrophically for channels
        whose mean is large against their spread; torch.var_mean (Welford)
        costs ten times more on CPU, so it serves other devices only.
        """
        if frames.device.type != "cpu":  # GPUs run Welford fast, in one kernel
            var, mean = torch.var_mean(frames, dim=-1, correction=0)
            return mean, var
        n = frames.shape[-1]
        mean = frames.sum(dim=-1) / n
        squares = torch.zeros_like(mean)
        for start in range(0, n, chunk):
            centred = frames[:, start : start + chunk] - mean[:, None]
            squares += torch.linalg.vector_norm(centred, dim=-1).square()
        return mean, squares / n

    def _masked_traceable(self, x):
        """The same statistics with a length mask (shape-static, for tracers)."""
        dtype, x = x.dtype, x.float()
        valid = torch.arange(x.shape[-1], device=x.device)[None, :] < self.lengths[:, None]
        valid = valid[:, None, :].to(x.dtype)
        count = valid.sum(dim=-1, keepdim=True)
        mean = (x * valid).sum(dim=-1, keepdim=True) / count
        var = ((x - mean).pow(2) * valid).sum(dim=-1, keepdim=True) / count
        normed = (x - mean) / torch.sqrt(var + self.eps)
        if self.affine:
            normed = normed * self.weight[None, :, None] + self.bias[None, :, None]
        return normed.to(dtype)


class ChannelFirstLayerNormConv(nn.Module):
    """A CNN layer of a large model's feature encoder (conv, LayerNorm over
    channels, GELU) that normalises in the conv's (B, C, T) layout.

    Hugging Face's layer transposes to (B, T, C) for ``nn.LayerNorm`` and
    back, copying the activations twice per layer; these statistics over
    the channel axis need no copy. Same parameters (and state-dict keys) as
    the layer it replaces; same outputs to fp32 rounding. On one CPU thread
    the CNN of a wav2vec2-large encoder took 0.75x the time
    (benchmarks/README.md, "Faster CNN front-end").

    Example
    -------
    >>> from transformers import Wav2Vec2Config
    >>> from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2LayerNormConvLayer
    >>> hf = Wav2Vec2LayerNormConvLayer(Wav2Vec2Config(feat_extract_norm="layer"), layer_id=1)
    >>> x = torch.randn(2, 512, 100)
    >>> torch.allclose(ChannelFirstLayerNormConv(hf)(x), hf(x), atol=1e-5)
    True
    """

    def __init__(self, layer):
        super().__init__()
        self.conv, self.layer_norm, self.activation = layer.conv, layer.layer_norm, layer.activation

    def forward(self, hidden_states):
        """Convolution, layer norm over channels and activation, on (B, C, T)."""
        hidden = self.conv(hidden_states)
        # nn.LayerNorm computes in fp32 and returns fp32 under autocast.
        out_dtype = torch.float32 if torch.is_autocast_enabled(hidden.device.type) else hidden.dtype
        hidden = hidden.float()
        mean = hidden.mean(dim=1, keepdim=True)
        centred = hidden - mean
        inv_std = torch.rsqrt(centred.square().mean(dim=1, keepdim=True) + self.layer_norm.eps)
        weight, bias = self.layer_norm.weight.float(), self.layer_norm.bias.float()
        hidden = torch.addcmul(bias[:, None], centred * inv_std, weight[:, None]).to(out_dtype)
        return self.activation(hidden)


class TruncatedSSLEncoder(HFTransformersInterface):
    """A wav2vec2 / HuBERT / WavLM model built with only its first N layers.

    Returns the stacked outputs of transformer layers 1..N (optionally with
    the CNN/positional output first). LayerDrop and SpecAugment masking are
    disabled in the config, so no training-mode randomness reaches the
    layer outputs except dropout, which ``freeze`` also removes.

    Arguments
    ---------
    source : str
        Hugging Face hub id (e.g. ``microsoft/wavlm-base-plus``) or a local
        folder written by ``save_pretrained``.
    n_layers : int
        Number of transformer layers to build, 1..depth of the model.
    save_path : str, optional
        Download cache; defaults to the Hugging Face hub cache.
    freeze : bool
        Freeze the weights and keep the model in eval mode.
    freeze_feature_extractor : bool
        When fine-tuning, keep the CNN feature extractor frozen.
    include_cnn_output : bool
        Prepend the transformer input (CNN features plus positional
        convolution, HF's ``hidden_states[0]``) to the stacked layers.
    normalize_waveform : bool, optional
        Zero-mean unit-variance normalisation of each waveform over its real
        samples. ``None`` follows the model's feature-extractor config.
    use_attention_mask : bool
        Pass an attention mask built from the relative lengths, so that
        padding does not reach the attention of real frames.

    Example
    -------
    >>> from lobes.testing.tiny_models import save_tiny_ssl
    >>> path = save_tiny_ssl(getfixture("tmp_path"), "wavlm", stable_layer_norm=False)
    >>> encoder = TruncatedSSLEncoder(path, n_layers=2)
    >>> layers, frame_lens = encoder(torch.randn(2, 16000))
    >>> layers.shape
    torch.Size([2, 2, 49, 32])
    """

    def __init__(
        self,
        source,
        n_layers,
        save_path=None,
        freeze=True,
        freeze_feature_extractor=True,
        include_cnn_output=False,
        normalize_waveform=None,
        use_attention_mask=True,
    ):
        # override_config runs inside the parent's __init__ and needs these.
        self.requested_layers = int(n_layers)
        self.source = str(source)
        source = os.path.expanduser(self.source)
        if looks_like_local_path(self.source) and not os.path.isdir(source):
            raise FileNotFoundError(
                f"SSL source {self.source!r} looks like a local folder but does not exist"
            )
        # A local folder never touches the hub cache (which may be unreadable,
        # or another user's): SpeechBrain looks for a snapshot under save_path.
        save_path = save_path or (source if os.path.isdir(source) else _hf_cache_dir())
        # transformers reports the weights of the layers we dropped as
        # "unexpected"; that is the point of truncation, not a problem.
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()
        try:
            super().__init__(source=source, save_path=save_path, freeze=freeze)
        except OSError as err:
            raise ValueError(
                f"Cannot load SSL model {source!r}: it is neither a local folder "
                f"holding a Hugging Face model nor a hub id that could be fetched "
                f"({err})"
            ) from err
        finally:
            transformers_logging.set_verbosity(verbosity)
        self.n_layers = self.requested_layers
        self.include_cnn_output = include_cnn_output
        self.use_attention_mask = use_attention_mask
        if normalize_waveform is None:
            normalize_waveform = self._feature_extractor_normalises(source)
        self.normalize_waveform = bool(normalize_waveform)

        if not freeze and freeze_feature_extractor:
            # What HF's freeze_feature_encoder does, which HubertModel lacks.
            self.model.feature_extractor._freeze_parameters()
        if not freeze:
            # Fine-tuning: parameters no fused layer depends on get no gradient,
            # and DDP fails at the second step waiting for theirs ("Expected to
            # have finished reduction"). Frozen, DDP leaves them out.
            for param in self.parameters_outside_the_layers():
                param.requires_grad_(False)

        layers = self.model.encoder.layers
        if len(layers) != self.n_layers:
            raise RuntimeError(
                f"built {len(layers)} layers instead of the {self.n_layers} requested"
            )
        self._first_cnn_norm = self._mask_first_cnn_norm()
        self._channel_first_cnn_norms()
        self._captured = []
        self._warned_no_bf16 = False
        if include_cnn_output:
            layers[0].register_forward_pre_hook(self._capture_input)
        for layer in layers:
            layer.register_forward_hook(self._capture_output)

    def parameters_outside_the_layers(self):
        """Parameters of the HF model that the captured layer outputs never
        depend on: SpecAugment's mask embedding (SpecAugment is off, see
        ``override_config``) and, in stable-layer-norm ("large") models, the
        LayerNorm applied after the last layer, which only HF's
        ``last_hidden_state`` goes through."""
        params = []
        if getattr(self.model, "masked_spec_embed", None) is not None:
            params.append(self.model.masked_spec_embed)
        if self.config.do_stable_layer_norm:
            params.extend(self.model.encoder.layer_norm.parameters())
        return params

    def _mask_first_cnn_norm(self):
        """Swaps the per-channel GroupNorm of a base model's first CNN layer
        for a length-masked one (same weights); returns it, or None."""
        if self.config.feat_extract_norm != "group":
            return None
        first = self.model.feature_extractor.conv_layers[0]
        norm = first.layer_norm
        if norm.num_groups != norm.num_channels:
            return None
        masked = LengthMaskedGroupNorm(norm.num_groups, norm.num_channels, norm.eps, norm.affine)
        masked.load_state_dict(norm.state_dict())
        masked.to(norm.weight.device)
        masked.weight.requires_grad_(norm.weight.requires_grad)
        masked.bias.requires_grad_(norm.bias.requires_grad)
        first.layer_norm = masked
        return masked

    def _channel_first_cnn_norms(self):
        """Large models' LayerNorm CNN layers normalise without transposing
        (``ChannelFirstLayerNormConv``, same weights)."""
        if self.config.feat_extract_norm != "layer":
            return
        conv_layers = self.model.feature_extractor.conv_layers
        for index, layer in enumerate(conv_layers):
            if isinstance(getattr(layer, "layer_norm", None), nn.LayerNorm):
                conv_layers[index] = ChannelFirstLayerNormConv(layer)

    def _load_sb_pretrained_parameters(self, path):
        """A SpeechBrain checkpoint in ``source`` (a ``.ckpt`` file beside the
        config), loaded as tensors only (``load_tensor_archive``), where
        SpeechBrain's own loader would unpickle it."""
        missing, _ = self.model.load_state_dict(load_tensor_archive(path), strict=False)
        for key in missing:
            logger.warning("%s has no parameter for %s", path, key)

    def override_config(self, config):
        """Cuts the config to N layers and disables LayerDrop and SpecAugment."""
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(
                f"SSL model {self.source!r} has model_type {config.model_type!r}; "
                f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
            )
        depth = config.num_hidden_layers
        if not 1 <= self.requested_layers <= depth:
            raise ValueError(
                f"n_layers={self.requested_layers} is outside 1..{depth} for "
                f"{self.source!r} ({depth} transformer layers)"
            )
        self.full_depth = depth
        config.num_hidden_layers = self.requested_layers
        config.layerdrop = 0.0
        config.apply_spec_augment = False
        return config

    def _feature_extractor_normalises(self, source):
        """Reads ``do_normalize`` from a local preprocessor config, if any.

        Without one (or for hub ids) the HF convention is used: models with
        a LayerNorm CNN ("large" models) expect normalised input.
        """
        local = os.path.join(source, "preprocessor_config.json")
        if os.path.isfile(local):
            with open(local, encoding="utf-8") as fin:
                return bool(json.load(fin).get("do_normalize", False))
        try:
            self.load_feature_extractor(source, cache_dir=_hf_cache_dir())
            return bool(self.feature_extractor.do_normalize)
        except OSError:
            return self.config.feat_extract_norm == "layer"

    def train(self, mode=True):
        """Keeps a frozen encoder in eval mode whatever ``Brain`` asks."""
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    @property
    def hidden_size(self):
        """Channel dimension C of each layer output."""
        return self.config.hidden_size

    def _capture_input(self, module, args):
        self._captured.append(args[0])

    def _capture_output(self, module, args, output):
        self._captured.append(output[0] if isinstance(output, tuple) else output)

    def frame_lengths(self, n_samples):
        """Number of frames the CNN makes of ``n_samples`` samples (tensor)."""
        return self.model._get_feat_extract_output_lengths(n_samples)

    def _prepare_input(self, wavs, wav_lens):
        """Normalises over real samples and builds the sample mask."""
        if wavs.dim() != 2:
            raise ValueError(f"expected waveforms of shape (batch, time), got {tuple(wavs.shape)}")
        n_samples = wavs.shape[1]
        if wav_lens is None:
            sample_mask = torch.ones_like(wavs, dtype=torch.bool)
        else:
            sample_mask = frame_mask(wav_lens, n_samples, wavs.device)
        if self.normalize_waveform:
            valid = sample_mask.to(wavs.dtype)
            count = valid.sum(dim=1, keepdim=True)
            mean = (wavs * valid).sum(dim=1, keepdim=True) / count
            var = ((wavs - mean).pow(2) * valid).sum(dim=1, keepdim=True) / count
            wavs = (wavs - mean) / torch.sqrt(var + 1e-7)
        wavs = wavs * sample_mask.to(wavs.dtype)
        return wavs, sample_mask

    def _autocast_this_hardware_can_run(self, device):
        """Keeps an ambient bf16 autocast (SpeechBrain's ``--precision=bf16``)
        unless the hardware has no native bf16, where it would make the
        encoder many times slower than fp32: then the encoder runs in fp32,
        with one warning saying so."""
        if ambient_autocast_dtype(device.type) != torch.bfloat16 or bf16_supported(device):
            return contextlib.nullcontext()
        if not self._warned_no_bf16:
            self._warned_no_bf16 = True
            resolve_precision("bf16", device, option="--precision")  # warns
        return torch.autocast(device.type, enabled=False)

    def forward(self, wavs, wav_lens=None):
        """Returns the stacked layer outputs (B, N, T, C) and frame lengths.

        Under ``torch.autocast`` (bf16/fp16, e.g. SpeechBrain's
        ``--precision``) the CNN and the transformer run in that precision
        and the layer outputs come in it.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms (B, S) at 16 kHz.
        wav_lens : torch.Tensor, optional
            Relative lengths (B,) in (0, 1], SpeechBrain style.

        Returns
        -------
        layers : torch.Tensor
            (B, N, T, C), or (B, N + 1, T, C) with ``include_cnn_output``.
        frame_lens : torch.Tensor
            Relative frame lengths (B,).
        """
        wavs, sample_mask = self._prepare_input(wavs, wav_lens)
        # A batch without padding needs no mask: skipping it keeps the
        # transformer on its plain attention path (tracers always get it).
        padded = wav_lens is not None and (
            torch.compiler.is_compiling() or torch.jit.is_tracing() or not bool(sample_mask.all())
        )
        attention_mask = sample_mask.long() if self.use_attention_mask and padded else None
        self._captured = []
        if self._first_cnn_norm is not None and wav_lens is not None:
            first_conv = self.model.feature_extractor.conv_layers[0].conv
            n_real = sample_mask.sum(dim=1)
            self._first_cnn_norm.lengths = (
                n_real - first_conv.kernel_size[0]
            ) // first_conv.stride[0] + 1
        try:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze), \
                    self._autocast_this_hardware_can_run(wavs.device):
                self.model(wavs, attention_mask=attention_mask)
        finally:
            if self._first_cnn_norm is not None:
                self._first_cnn_norm.lengths = None
        layers = torch.stack(self._captured, dim=1)
        self._captured = []
        n_frames = self.frame_lengths(sample_mask.sum(dim=1))
        frame_lens = (n_frames.to(wavs.dtype) / layers.shape[2]).clamp(max=1.0)
        return layers, frame_lens


@register_checkpoint_hooks
class LayerwiseSSL(nn.Module):
    """Truncated SSL encoder plus a learnable weighted sum over its layers.

    Arguments
    ---------
    source : str
        Hugging Face hub id or local folder (wav2vec2, HuBERT or WavLM).
    n_layers : int
        Number of transformer layers to keep and fuse.
    freeze : bool
        Keep the SSL weights fixed and the SSL in eval mode (default).
    freeze_feature_extractor : bool
        With ``freeze=False``, keep the CNN feature extractor frozen.
    include_cnn_output : bool
        Also fuse the transformer input (HF ``hidden_states[0]``).
    fusion_norm : str
        ``"batch"`` (paper), ``"layer"`` or ``"none"``; see ``WeightedLayerSum``.
    normalize_waveform : bool, optional
        ``None`` follows the model's feature-extractor config.
    use_attention_mask : bool
        Mask padding in the encoder's attention when lengths are given.
    save_path : str, optional
        Download cache for hub ids; the Hugging Face cache by default.

    Example
    -------
    >>> from lobes.testing.tiny_models import save_tiny_ssl
    >>> path = save_tiny_ssl(getfixture("tmp_path"), "wav2vec2", stable_layer_norm=True)
    >>> ssl = LayerwiseSSL(path, n_layers=3)
    >>> feats, lens = ssl(torch.randn(2, 16000), torch.tensor([1.0, 0.5]))
    >>> feats.shape, lens
    (torch.Size([2, 49, 32]), tensor([1.0000, 0.4898]))
    >>> ssl.layer_weights()
    tensor([0.3333, 0.3333, 0.3333])
    """

    def __init__(
        self,
        source,
        n_layers,
        freeze=True,
        freeze_feature_extractor=True,
        include_cnn_output=False,
        fusion_norm="batch",
        normalize_waveform=None,
        use_attention_mask=True,
        save_path=None,
    ):
        super().__init__()
        self.freeze = freeze
        self.encoder = TruncatedSSLEncoder(
            source,
            n_layers,
            save_path=save_path,
            freeze=freeze,
            freeze_feature_extractor=freeze_feature_extractor,
            include_cnn_output=include_cnn_output,
            normalize_waveform=normalize_waveform,
            use_attention_mask=use_attention_mask,
        )
        n_fused = n_layers + int(include_cnn_output)
        self.fusion = WeightedLayerSum(n_fused, norm=fusion_norm)

    @property
    def output_size(self):
        """Feature dimension C of the fused output."""
        return self.encoder.hidden_size

    def layer_weights(self):
        """Normalised fusion weights (N,), layer 1 first."""
        return self.fusion.layer_weights()

    def layer_outputs(self, wavs, wav_lens=None):
        """Stacked per-layer outputs before fusion, (B, N, T, C)."""
        return self.encoder(wavs, wav_lens)[0]

    def features(self, wavs, wav_lens=None, encoder=None):
        """The encoder pass before fusion: stacked layers (B, N, T, C),
        relative frame lengths (B,) and the real-frame mask (B, T) (None
        without ``wav_lens``).

        ``encoder``: the module to run instead of ``self.encoder``: its DDP
        wrapper, when a fine-tuned encoder trains under torchrun (the wrapper
        must run the forward pass for its gradients to be synchronised).
        """
        layers, frame_lens = (encoder or self.encoder)(wavs, wav_lens)
        mask = None if wav_lens is None else frame_mask(frame_lens, layers.shape[2], layers.device)
        return layers, frame_lens, mask

    def branch_fusion(self, name=SINGLE_RUN):
        """The fusion of branch ``name``: this single run's only one."""
        if name != SINGLE_RUN:
            raise KeyError(f"a single-depth encoder has no branch {name!r}")
        return self.fusion

    def forward(self, wavs, wav_lens=None):
        """Returns fused features (B, T, C) and relative frame lengths (B,)."""
        layers, frame_lens, mask = self.features(wavs, wav_lens)
        return self.fusion(layers, mask), frame_lens

    def trainable_state_dict(self):
        """State of the trainable parts: never the weights of a frozen SSL."""
        state = self.state_dict()
        if not self.freeze:
            return state
        return {k: v for k, v in state.items() if not k.startswith("encoder.")}

    @mark_as_saver
    def _save(self, path):
        torch.save(self.trainable_state_dict(), path)

    @mark_as_loader
    def _load(self, path, end_of_epoch=False, device=None):
        del end_of_epoch
        state = load_tensor_archive(path, map_location=device or "cpu")
        if self.freeze and any(k.startswith("encoder.") for k in state):
            raise RuntimeError(
                f"{path} holds SSL weights but this encoder is frozen; "
                "it was saved with freeze_ssl=False"
            )
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not (self.freeze and k.startswith("encoder."))]
        if missing or unexpected:
            raise RuntimeError(f"{path} does not fit this model: missing {missing}, unexpected {unexpected}")
