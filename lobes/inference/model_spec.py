"""What a trained countermeasure is made of, as plain values, and the code
that builds its modules from them.

Run folders (``lobes.inference.run_loader``) and release folders
(``lobes.inference.release``) both describe their model with a ``ModelSpec``;
``build_modules`` makes the encoder, fusion and head in code, so no file of
a model folder ever names what gets constructed.
"""

from dataclasses import asdict, dataclass, field

import torch

from lobes.models.branches import HEAD_CLASSES, build_head
from lobes.models.heads.frame import UtteranceFrameHead
from lobes.models.ssl import LayerwiseSSL

# Heads a detector can load: the utterance heads, and PartialSpoof's frame
# head (segment.yaml, ``head_type: frame``) pooled to utterance scores as its
# recipe pools them (``UtteranceFrameHead``, option ``pooling``).
DETECTOR_HEADS = {**HEAD_CLASSES, "frame": UtteranceFrameHead}


@dataclass
class ModelSpec:
    """Plain description of an SSL + fusion + head countermeasure.

    Attributes
    ----------
    ssl_source : str
        Hub id or local folder of the SSL encoder (a release's own
        ``encoder/`` folder once released).
    n_layers : int
        Transformer layers kept and fused.
    head_type : str
        A name of ``DETECTOR_HEADS`` (``ffn``, ``aasist`` or ``frame``).
    head_options : dict
        Keyword arguments of the head class.
    own_head_type : str
        The head the recipe's own head options were written for; another
        head gets only the options its class accepts (branched runs).
    """

    ssl_source: str
    n_layers: int
    head_type: str
    head_options: dict = field(default_factory=dict)
    own_head_type: str = None
    include_cnn_output: bool = False
    fusion_norm: str = "batch"
    normalize_waveform: bool = None
    use_attention_mask: bool = True
    freeze: bool = True
    max_samples: int = 64600
    eval_crop: str = "first"
    selection_metric: str = "EER"

    def to_dict(self):
        return asdict(self)

    def detector_hparams(self):
        """The hparams ``SpoofDetector`` reads (crop and selection rule)."""
        return {"max_samples": self.max_samples, "eval_crop": self.eval_crop,
                "selection_metric": self.selection_metric}


def check_head_type(head_type, where):
    """Refuses a head this package cannot build, naming where it was read."""
    if head_type not in DETECTOR_HEADS:
        raise ValueError(
            f"{where}: head {head_type!r} cannot be loaded as a detector "
            f"(known heads: {', '.join(sorted(DETECTOR_HEADS))})"
        )
    return head_type


def build_modules(spec):
    """``{"ssl": LayerwiseSSL, "head": head}`` built in code from ``spec``.

    The head is initialised randomly before its weights are loaded; torch's
    global RNG is left as the caller had it.
    """
    with torch.random.fork_rng(devices=[]):
        ssl = LayerwiseSSL(
            spec.ssl_source,
            n_layers=spec.n_layers,
            freeze=spec.freeze,
            include_cnn_output=spec.include_cnn_output,
            fusion_norm=spec.fusion_norm,
            normalize_waveform=spec.normalize_waveform,
            use_attention_mask=spec.use_attention_mask,
        )
        own = spec.own_head_type or spec.head_type
        head = build_head(spec.head_type, ssl.output_size, own, DETECTOR_HEADS[own], dict(spec.head_options))
    return {"ssl": ssl, "head": head}
