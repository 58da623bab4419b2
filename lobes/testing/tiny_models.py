"""Tiny, randomly initialised SSL models saved locally, for tests and demos.

No network is needed: each model is built from a small config and written
with ``save_pretrained`` together with a feature-extractor config, then
loaded by path exactly as a downloaded model would be.
"""

import os

from transformers import Wav2Vec2FeatureExtractor

from lobes.models.ssl import SSL_CLASSES as TINY_MODELS  # model type -> (config, model) classes


def tiny_ssl_config(model_type, stable_layer_norm, n_layers=4, hidden_size=32, conv_channels=16):
    """Config of a tiny model with the real CNN strides (20 ms frames).

    ``stable_layer_norm=True`` gives the "large" form (pre-LN layers, LayerNorm
    CNN, final LayerNorm); False gives the "base" form (post-LN, GroupNorm CNN).
    LayerDrop and SpecAugment are left on, as in the real checkpoints, so that
    tests prove the encoder turns them off.

    Example
    -------
    >>> tiny_ssl_config("hubert", stable_layer_norm=True).do_stable_layer_norm
    True
    """
    config_class, _ = TINY_MODELS[model_type]
    return config_class(
        hidden_size=hidden_size,
        num_hidden_layers=n_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        conv_dim=(conv_channels,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        do_stable_layer_norm=stable_layer_norm,
        feat_extract_norm="layer" if stable_layer_norm else "group",
        layerdrop=0.1,
        apply_spec_augment=True,
        mask_time_prob=0.5,
        mask_time_length=2,
    )


def save_tiny_ssl(
    folder,
    model_type="wav2vec2",
    stable_layer_norm=False,
    n_layers=4,
    hidden_size=32,
    conv_channels=16,
    seed=0,
):
    """Builds a tiny random model and saves it under ``folder``; returns its path.

    Example
    -------
    >>> path = save_tiny_ssl(getfixture("tmp_path"), "wav2vec2")
    >>> sorted(os.listdir(path))
    ['config.json', 'model.safetensors', 'preprocessor_config.json']
    """
    form = "large" if stable_layer_norm else "base"
    name = f"tiny-{model_type}-{form}-{n_layers}l-{hidden_size}d-{conv_channels}c"
    config = tiny_ssl_config(model_type, stable_layer_norm, n_layers, hidden_size, conv_channels)
    return save_random_ssl(folder, name, config, seed)


def save_random_ssl(folder, name, config, seed=0):
    """Saves a randomly initialised model of ``config`` (any size) as
    ``folder/name``, with the feature-extractor config a downloaded one has
    (inputs normalised for LayerNorm-CNN "large" models); returns its path.
    An existing save is reused. Benchmarks build real-size models with it.

    Example
    -------
    >>> config = tiny_ssl_config("hubert", stable_layer_norm=False, n_layers=1)
    >>> path = save_random_ssl(getfixture("tmp_path"), "one-layer", config)
    >>> os.path.basename(path), os.path.isfile(os.path.join(path, "model.safetensors"))
    ('one-layer', True)
    """
    import torch

    path = os.path.join(str(folder), name)
    if os.path.isfile(os.path.join(path, "model.safetensors")):
        return path
    _, model_class = TINY_MODELS[config.model_type]
    torch.manual_seed(seed)
    model_class(config).save_pretrained(path)
    normalise = config.feat_extract_norm == "layer"
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=normalise,
        return_attention_mask=normalise,
    ).save_pretrained(path)
    return path
