"""Assembles a run's encoder and heads from its branch plan.

A single run is one branch; a multi-depth or branched run is several
branches (``lobes.models.branches.plan_branches``) sharing one frozen encoder
pass. The encoder itself (``lobes.models.ssl``) knows nothing of branches:
this module builds the per-branch fusions (``MultiDepthSSL``), one head per
branch (``head_per_depth``), and the single-branch view a detector loads
(``BranchSSL``). ``layerwise_ssl`` is what the recipe YAMLs call.
"""

import torch  # noqa: F401  (doctests use it)
import torch.nn as nn

from lobes.models.branches import SINGLE, Branch, BranchModel, is_single_run, plan_branches, seeded
from lobes.models.heads.registry import build_head, head_name, resolve_head
from lobes.models.layer_sum import WeightedLayerSum
from lobes.models.ssl import LayerwiseSSL
from lobes.utils.run_folder import SINGLE_RUN


class MultiDepthSSL(LayerwiseSSL):
    """One frozen encoder pass feeding several branches, each with its own fusion.

    With a frozen SSL the depth-N encoder is a prefix of any deeper one, so
    the encoder runs once at the largest depth and every branch fuses layers
    1..N of its depth with its own weights. The branches are depths
    (``"N<n>"``) or, in a branched run, (head, depth, seed) triples
    (``"<head>/N<n>/seed<s>"``, see ``lobes.models.branches``). ``forward`` returns
    ``{branch: (fused, lens)}``; ``features`` and ``fuse`` split it so that a
    trainer can run one branch at a time on the shared layers.

    Arguments
    ---------
    source : str
        Hugging Face hub id or local folder.
    depths : list of int, optional
        The depths to train side by side, e.g. ``[2, 4, 6, 12]``.
    branches : list of lobes.models.branches.Branch, optional
        The branches (instead of ``depths``); each fusion is built with
        torch seeded by its branch's seed (depth branches have none: they
        draw from the run's seeded stream, as before).
    **kwargs
        As for ``LayerwiseSSL``; ``freeze`` must stay True.

    Example
    -------
    >>> from lobes.testing.tiny_models import save_tiny_ssl
    >>> path = save_tiny_ssl(getfixture("tmp_path"), "hubert")
    >>> ssl = MultiDepthSSL(path, depths=[1, 3])
    >>> {name: feats.shape for name, (feats, lens) in ssl(torch.randn(2, 16000)).items()}
    {'N1': torch.Size([2, 49, 32]), 'N3': torch.Size([2, 49, 32])}
    """

    def __init__(self, source, depths=None, branches=None, **kwargs):
        if branches is None:
            branches = plan_branches(list(depths or []), None, None)
        if not branches:
            raise ValueError("depths must list at least one depth")
        if not kwargs.get("freeze", True):
            raise ValueError("multi-depth and branched training need a frozen SSL (freeze_ssl: True)")
        self.branches = list(branches)
        self.depths = sorted({b.depth for b in self.branches})
        super().__init__(source, n_layers=self.depths[-1], **kwargs)
        extra = int(self.encoder.include_cnn_output)
        norm = self.fusion.norm_type
        del self.fusion
        self.fusions = nn.ModuleDict(
            {b.name: seeded(b.seed, lambda b=b: WeightedLayerSum(b.depth + extra, norm=norm))
             for b in self.branches}
        )

    def layer_weights(self):
        """``{branch: weights}`` for every branch."""
        return {name: fusion.layer_weights() for name, fusion in self.fusions.items()}

    def branch_fusion(self, name):
        """The fusion of branch ``name``."""
        return self.fusions[name]

    def fuse(self, name, layers, mask):
        """Branch ``name``'s fused features (B, T, C) from ``features``' layers."""
        fusion = self.fusions[name]
        return fusion(layers[:, : fusion.n_layers], mask)

    def forward(self, wavs, wav_lens=None):
        """Returns ``{branch: (fused (B, T, C), relative frame lengths)}``."""
        layers, frame_lens, mask = self.features(wavs, wav_lens)
        return {name: (self.fuse(name, layers, mask), frame_lens) for name in self.fusions}


def layerwise_ssl(source, n_layers, branches=None, **kwargs):
    """The encoder of a branch plan (``lobes.models.branches.plan_branches``):
    ``LayerwiseSSL`` for a single run, ``MultiDepthSSL`` for several branches.

    Lets one YAML serve all: ``n_layers: 6`` or ``n_layers: [2, 4, 6, 12]``,
    with or without ``heads`` and ``init_seeds`` lists. Without
    ``branches``, the plan of ``n_layers`` alone.
    """
    plan = branches or plan_branches(n_layers, None, None)
    if is_single_run(plan):
        return LayerwiseSSL(source, n_layers=plan[0].depth, **kwargs)
    return MultiDepthSSL(source, branches=plan, **kwargs)


class BranchHeads(nn.ModuleDict):
    """One head per branch of a ``MultiDepthSSL``, called on all branches at once.

    The Brain calls one head at a time (``self[name]``); ``forward`` on a
    dict of inputs serves callers that want all branches at once.

    Example
    -------
    >>> heads = BranchHeads({"N1": nn.Linear(3, 2)})
    >>> {name: out.shape for name, out in heads({"N1": (torch.zeros(4, 3),)}).items()}
    {'N1': torch.Size([4, 2])}
    """

    def forward(self, branch_inputs):
        """``{name: inputs tuple}`` -> ``{name: head(*inputs)}``."""
        return {name: self[name](*inputs) for name, inputs in branch_inputs.items()}


def encoder_plan(ssl):
    """The branch plan an encoder was built from (a single run's head is
    unknown to its encoder: None)."""
    if isinstance(ssl, MultiDepthSSL):
        return list(ssl.branches)
    return [Branch(None, ssl.encoder.n_layers, None, SINGLE_RUN, SINGLE)]


def checked_plan(ssl, branches=None):
    """The branch plan of a run, as a list, checked against the encoder
    ``ssl`` was built from: ``branches`` (the YAML's plan), or, when None
    (YAMLs written before the plan was passed on), the encoder's own. A
    plan of other branches or depths than the encoder's is refused.

    Example
    -------
    >>> from lobes.testing.tiny_models import save_tiny_ssl
    >>> ssl = LayerwiseSSL(save_tiny_ssl(getfixture("tmp_path"), "wavlm"), n_layers=2)
    >>> checked_plan(ssl, plan_branches(2, "ffn", 1))
    [Branch(head='ffn', depth=2, seed=None, name='.', kind='single')]
    >>> checked_plan(ssl, plan_branches(3, "ffn", 1))  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: the branch plan [('.', 3)] differs from the encoder's [('.', 2)]: give the encoder,
    head_per_depth and the Brain the same `branches`
    """
    built = encoder_plan(ssl)
    branches = list(branches) if branches else built
    planned = sorted((b.name, b.depth) for b in branches)
    if planned != sorted((b.name, b.depth) for b in built):
        raise ValueError(
            f"the branch plan {[(b.name, b.depth) for b in branches]} differs from the encoder's "
            f"{[(b.name, b.depth) for b in built]}: "
            "give the encoder, head_per_depth and the Brain the same `branches`"
        )
    return branches


def head_per_depth(ssl, head_class, branches=None, **kwargs):
    """One head for a single run; ``BranchHeads``, one head per branch of the
    plan, for a multi-depth or branched run.

    ``branches``: the YAML's plan (``lobes.models.branches.plan_branches``),
    the one the encoder was built from; None reads it back from the encoder;
    see ``checked_plan``. ``head_class(ssl.output_size, **kwargs)`` for
    branches of the YAML's own head; another head of a branched run is the
    ``lobes.models.heads.HEADS`` class of its name, built with the ``kwargs``
    it accepts. Each branch's head is built with torch seeded by the
    branch's seed.
    """
    branches = checked_plan(ssl, branches)
    if is_single_run(branches):
        return build_head(head_class, ssl.output_size, kwargs)
    own = head_name(head_class)
    return BranchHeads({
            b.name: seeded(b.seed, lambda b=b: build_head(
                head_class if b.head in (own, None) else resolve_head(b.head, where="heads"),
                ssl.output_size, kwargs, own_class=head_class))
            for b in branches
        })


def branch_model(ssl, head, name):
    """Branch ``name``'s fusion and head as one ``BranchModel``; ``head``
    is ``head_per_depth``'s (one head, or ``BranchHeads``)."""
    return BranchModel(ssl.branch_fusion(name), head if name == SINGLE_RUN else head[name])


class BranchSSL(nn.Module):
    """One branch of a ``MultiDepthSSL`` as a single-depth SSL for scoring:
    the encoder cut to the branch's depth, then the branch's fusion.
    ``forward`` returns (fused (B, T, C), relative frame lengths) like
    ``LayerwiseSSL``; ``lobes.inference.detector`` loads a branch folder with it."""

    def __init__(self, ssl, name):
        super().__init__()
        self.name, self.multi = name, ssl
        self.fusion = ssl.fusions[name]
        depth = {b.name: b for b in ssl.branches}[name].depth
        layers = ssl.encoder.model.encoder.layers
        # Outputs are captured by hooks on each layer: dropping the deeper
        # layers leaves layers 1..depth exactly as they were.
        ssl.encoder.model.encoder.layers = layers[:depth]
        ssl.encoder.n_layers = depth

    @property
    def output_size(self):
        """Channels C of the fused features."""
        return self.multi.output_size

    def layer_weights(self):
        """This branch's fusion weights over its layers."""
        return self.fusion.layer_weights()

    def forward(self, wavs, wav_lens=None):
        """Waveforms -> (fused (B, T, C), relative frame lengths) of this branch."""
        layers, frame_lens, mask = self.multi.features(wavs, wav_lens)
        return self.multi.fuse(self.name, layers, mask), frame_lens
