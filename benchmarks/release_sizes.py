"""Sizes of release folders (``python -m lobes.release``) at real model sizes.

Writes the weight files of a release exactly as ``lobes.inference.release``
writes them (``write_encoder`` and ``write_fusion_head``) for real-size
encoders (base: 12 layers x 768; large: 24 x 1024) cut to N layers, and
measures them on disk. The weights are left uninitialised (sizes do not
depend on values), so nothing is downloaded and nothing is trained.

    python benchmarks/release_sizes.py                       # wavlm, base and large, N = 4 and full
    python benchmarks/release_sizes.py --models wavlm wav2vec2 hubert --depths 2 4 6
"""

import argparse
import os
import sys
import tempfile
from types import SimpleNamespace

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed import ARCHITECTURES, full_size_config  # noqa: E402

from lobes.inference.release import (  # noqa: E402
    DTYPES,
    parameter_count,
    write_encoder,
    write_fusion_head,
)
from lobes.models.heads import HEADS  # noqa: E402
from lobes.models.layer_sum import WeightedLayerSum  # noqa: E402


def encoder_at_depth(model_type, size, depth):
    """A real-size encoder with ``depth`` layers (``None``: all), weights uninitialised."""
    config = full_size_config(model_type, size)
    full_depth = config.num_hidden_layers
    config.num_hidden_layers = depth or full_depth
    _, model_class = ARCHITECTURES[model_type]
    with torch.device("meta"):
        model = model_class(config)
    model = model.to_empty(device="cpu")  # storage without initialisation
    return SimpleNamespace(model=model, config=config, normalize_waveform=size == "large",
                           use_attention_mask=True), full_depth


def measure(model_type, size, depth, head_type, dtype, folder):
    encoder, full_depth = encoder_at_depth(model_type, size, depth)
    n_layers = encoder.config.num_hidden_layers
    fusion = WeightedLayerSum(n_layers)
    head = HEADS[head_type](encoder.config.hidden_size)
    encoder_file = write_encoder(encoder, os.path.join(folder, "encoder"), DTYPES[dtype])
    head_file = write_fusion_head(fusion, head, os.path.join(folder, "fusion_head.safetensors"))
    row = {
        "model": f"{model_type}-{size}", "N": n_layers, "full_depth": full_depth, "head": head_type,
        "dtype": dtype,
        "params": parameter_count(encoder.model) + parameter_count(fusion) + parameter_count(head),
        "MB": (os.path.getsize(encoder_file) + os.path.getsize(head_file)) / 1e6,
    }
    for path in (encoder_file, head_file):
        os.remove(path)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["wavlm"], choices=sorted(ARCHITECTURES))
    parser.add_argument("--sizes", nargs="+", default=["base", "large"], choices=["base", "large"])
    parser.add_argument("--depths", nargs="+", type=int, default=[4],
                        help="depths besides the full one (always measured)")
    parser.add_argument("--heads", nargs="+", default=["ffn", "aasist"], choices=["ffn", "aasist"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float16"], choices=sorted(DTYPES))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for model_type in args.models:
            for size in args.sizes:
                for depth in [*args.depths, None]:
                    for head in args.heads:
                        for dtype in args.dtypes:
                            rows.append(measure(model_type, size, depth, head, dtype, folder))
    full = {(r["model"], r["head"], r["dtype"]): r for r in rows if r["N"] == r["full_depth"]}
    print("| model | N | head | dtype | parameters (M) | x full | weight files (MB) | x full |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        f = full[(r["model"], r["head"], r["dtype"])]
        print(f"| {r['model']} | {r['N']}/{r['full_depth']} | {r['head']} | {r['dtype']} | "
              f"{r['params'] / 1e6:.1f} | {r['params'] / f['params']:.2f} | {r['MB']:.1f} | "
              f"{r['MB'] / f['MB']:.2f} |")


if __name__ == "__main__":
    main()
