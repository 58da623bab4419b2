"""The heads known by name, and the name of any head class.

A head is any ``nn.Module`` built as ``Head(input_size, **options)`` and
called as ``head(features, lengths)``: features (B, T, C), relative lengths
(B,), logits (B, 2) ordered [spoof, bonafide]. A recipe YAML names its class
once (``head_class: !name:...``); the name of that class (``head_name``) is
what branch folders, ``heads:`` lists, ``results.json`` and release configs
record. Loading a model folder maps the recorded name back to a class here,
or to a class the caller passes (``resolve_head``): nothing named in a folder
is ever imported.
"""

import inspect

from lobes.models.heads.aasist import AASISTHead
from lobes.models.heads.ffn import FFNHead
from lobes.models.heads.frame import FrameHead, UtteranceFrameHead

# Name -> class of the heads this package provides.
HEADS = {"ffn": FFNHead, "aasist": AASISTHead, "frame": FrameHead}


def head_class_of(head_class):
    """The class itself, also when given as YAML's ``!name:`` partial."""
    return getattr(head_class, "func", head_class)


def head_name(head_class):
    """The recorded name of a head class: its ``HEADS`` name, else the
    class's own ``__name__`` (a head of the user's own).

    Example
    -------
    >>> from functools import partial
    >>> head_name(FFNHead), head_name(partial(AASISTHead)), head_name(type("MyHead", (), {}))
    ('ffn', 'aasist', 'MyHead')
    """
    cls = head_class_of(head_class)
    for name, known in HEADS.items():
        if cls is known:
            return name
    return cls.__name__


def name_from_class_path(path):
    """The recorded name of the head class a YAML names by dotted ``path``
    (e.g. ``lobes.models.heads.FFNHead``), without importing anything.

    Example
    -------
    >>> name_from_class_path("lobes.models.heads.frame.FrameHead"), name_from_class_path("my_heads.LSTMHead")
    ('frame', 'LSTMHead')
    """
    class_name = path.rsplit(".", 1)[-1]
    if path.startswith("lobes."):
        for name, known in HEADS.items():
            if known.__name__ == class_name:
                return name
    return class_name


def resolve_head(name, head_classes=(), where="the model folder"):
    """The class of the head recorded as ``name``: one of ``head_classes``
    (classes of the user's own, passed in code) or of ``HEADS``.

    Example
    -------
    >>> resolve_head("ffn") is FFNHead
    True
    >>> resolve_head("LSTMHead", where="run/hyperparams.yaml")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    ValueError: run/hyperparams.yaml: head 'LSTMHead' is not one of lobes' heads (aasist, ffn, frame): it is a
    class of your own, which a model folder never imports: pass it, e.g. head_classes=[LSTMHead]
    """
    given = {head_name(cls): head_class_of(cls) for cls in head_classes or ()}
    known = {**HEADS, **given}
    if name not in known:
        raise ValueError(
            f"{where}: head {name!r} is not one of lobes' heads ({', '.join(sorted(HEADS))}): it is a "
            f"class of your own, which a model folder never imports: pass it, e.g. head_classes=[{name}]"
        )
    return known[name]


def scoring_head_class(cls):
    """The class that scores utterances with the weights of a ``cls`` head:
    a frame head's logits pooled over the utterance, any other head itself."""
    return UtteranceFrameHead if cls is FrameHead else cls


def gives_frame_logits(cls):
    """Whether heads of ``cls`` give one logit pair per frame (B, T, 2)."""
    return cls is FrameHead


def build_head(head_class, input_size, options, own_class=None):
    """``head_class(input_size, **options)``; for a head other than the
    YAML's own (``own_class``) in a branched run, only the options its class
    accepts (e.g. ``pooling`` reaches FFN heads alone), defaults for the rest.
    An option the YAML's own head does not take is refused by name.

    Example
    -------
    >>> build_head(FFNHead, 8, {"pooling": "paper"}).pooling.variant
    'paper'
    >>> build_head(AASISTHead, 8, {"pooling": "paper"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: head: AASISTHead takes no option pooling (its options: ...); remove it from the YAML's head: entry
    """
    cls = head_class_of(head_class)
    parameters = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return head_class(input_size, **options)
    if own_class is not None and cls is not head_class_of(own_class):
        options = {k: v for k, v in options.items() if k in parameters}
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise ValueError(
            f"head: {cls.__name__} takes no option {', '.join(unknown)} (its options: "
            f"{', '.join(name for name in parameters if name != 'input_size') or 'none'}); "
            "remove it from the YAML's head: entry"
        )
    return head_class(input_size, **options)
