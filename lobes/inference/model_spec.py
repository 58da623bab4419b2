"""What a trained countermeasure is made of, as plain values, and the code
that builds its modules from them.

Run folders (``lobes.inference.run_loader``) and release folders
(``lobes.inference.release``) both describe their model with a ``ModelSpec``;
``build_modules`` makes the encoder, fusion and head in code, so no file of
a model folder ever names what gets constructed.
"""

from dataclasses import asdict, dataclass, field

import torch

from lobes.models.heads.registry import build_head, resolve_head, scoring_head_class
from lobes.models.ssl import LayerwiseSSL
from lobes.utils.choices import DEFAULT_CROP, DEFAULT_MAX_SAMPLES, DEFAULT_SELECTION_METRIC


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
        The head's recorded name (``lobes.models.heads.registry``): ``ffn``,
        ``aasist``, ``frame`` (PartialSpoof's frame head, whose frame scores
        are pooled to the utterance score as its recipe pools them, option
        ``pooling``) or the name of a class of the user's own.
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
    max_samples: int = DEFAULT_MAX_SAMPLES
    eval_crop: str = DEFAULT_CROP
    selection_metric: str = DEFAULT_SELECTION_METRIC

    def to_dict(self):
        """The spec as a plain dict."""
        return asdict(self)

    def detector_hparams(self):
        """The hparams ``SpoofDetector`` reads (crop and selection rule)."""
        return {"max_samples": self.max_samples, "eval_crop": self.eval_crop,
                "selection_metric": self.selection_metric}


def head_class_for(head_type, head_classes=(), where="the model folder"):
    """The class that scores with the head recorded as ``head_type``:
    ``HEADS``' or one of the caller's ``head_classes``, a frame head pooled
    to utterance scores."""
    return scoring_head_class(resolve_head(head_type, head_classes, where))


def build_modules(spec, head_classes=(), where="the model folder"):
    """``{"ssl": LayerwiseSSL, "head": head}`` built in code from ``spec``;
    ``head_classes``: head classes of the user's own that ``spec`` may name.

    The head is initialised randomly before its weights are loaded; torch's
    global RNG is left as the caller had it.
    """
    head_class = head_class_for(spec.head_type, head_classes, where)
    own = spec.own_head_type or spec.head_type
    own_class = head_class if own == spec.head_type else head_class_for(own, head_classes, where)
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
        head = build_head(head_class, ssl.output_size, dict(spec.head_options), own_class=own_class)
    return {"ssl": ssl, "head": head}
