"""Stops training on the first NaN or inf, naming where it came from.

One bad batch (a file with NaN samples that got past the checks, an
exploding step) turns every parameter into NaN; training then carries on,
every dev score is NaN, and a NaN checkpoint would be saved and selected.
``SpoofBrain`` calls these checks after each step and before each
checkpoint, so that such a run stops with the ids of the batch at fault
and no non-finite checkpoint is written.
"""

import math

import torch


class NonFiniteTrainingError(FloatingPointError):
    """The loss, a parameter or a dev metric became NaN or inf."""


def _ids(batch_ids, limit=16):
    ids = list(batch_ids)
    shown = ", ".join(map(str, ids[:limit]))
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


def check_loss(loss, batch_ids, epoch):
    """Raises when ``loss`` is not finite, naming the batch's trial ids.

    Example
    -------
    >>> check_loss(torch.tensor(0.5), ["a"], 1)
    >>> check_loss(torch.tensor(float("nan")), ["a", "b"], 3)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    lobes.training.finite_guard.NonFiniteTrainingError: training loss is nan in epoch 3, on the batch of trials a,
    b: stopping (no checkpoint of this epoch is saved); check these files, or lower lr
    """
    if not bool(torch.isfinite(loss).all()):
        raise NonFiniteTrainingError(
            f"training loss is {float(loss.detach().float().sum())} in epoch {epoch}, on the batch "
            f"of trials {_ids(batch_ids)}: stopping (no checkpoint of this epoch is saved); "
            "check these files, or lower lr"
        )


def nonfinite_parameters(modules):
    """Names of the trainable parameters of ``modules`` holding NaN or inf
    (one device sync for all of them).

    Example
    -------
    >>> layer = torch.nn.Linear(2, 1)
    >>> nonfinite_parameters(layer)
    []
    >>> _ = layer.bias.data.fill_(float("inf"))
    >>> nonfinite_parameters(layer)
    ['bias']
    """
    named = [(name, p) for name, p in modules.named_parameters() if p.requires_grad]
    if not named:
        return []
    finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).tolist()
    return [name for (name, _), ok in zip(named, finite) if not ok]


def check_parameters(modules, batch_ids, epoch):
    """Raises when a trainable parameter became non-finite after a step."""
    bad = nonfinite_parameters(modules)
    if bad:
        raise NonFiniteTrainingError(
            f"parameters {', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''} became NaN or inf "
            f"in epoch {epoch}, after the batch of trials {_ids(batch_ids)}: stopping (no "
            "checkpoint of this epoch is saved); check these files, or lower lr"
        )


def check_metrics(metrics, epoch, branch=None):
    """Raises before a checkpoint whose dev metrics are not finite is saved.

    Example
    -------
    >>> check_metrics({"EER": 10.0, "loss": float("nan")}, 2)  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    lobes.training.finite_guard.NonFiniteTrainingError: dev loss is nan after epoch 2: this checkpoint is not saved
    and training stops (a dev file or the model holds NaN/inf)
    """
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            where = f" ({branch})" if branch else ""
            raise NonFiniteTrainingError(
                f"dev {key}{where} is {value} after epoch {epoch}: this checkpoint is not saved "
                "and training stops (a dev file or the model holds NaN/inf)"
            )
