"""Loading a run's selected checkpoint into modules built in code."""

import glob
import os

from speechbrain.utils.checkpoints import Checkpointer

from lobes.utils.choices import DEFAULT_SELECTION_METRIC
from lobes.utils.run_folder import incomplete_checkpoint, rank_checkpoint
from lobes.utils.safe_checkpoints import use_safe_load_hooks

# Every checkpoint a detector loads is read as tensors only.
use_safe_load_hooks()


def _rank_checkpoints(selection_metric):
    """The recipe's own checkpoint ranking, as a Checkpointer importance key."""
    return lambda checkpoint: rank_checkpoint(checkpoint.meta, selection_metric)


def load_checkpoint(modules, checkpoint, selection_metric=DEFAULT_SELECTION_METRIC):
    """Loads ``modules`` from a checkpoint; returns the checkpoint used.

    Arguments
    ---------
    modules : dict
        Name -> module; each needs a ``<name>.ckpt`` file in the checkpoint.
    checkpoint : str
        One ``CKPT+*`` folder, or a folder of them (a recipe's ``save/``),
        in which case the best one is chosen as the recipe chooses it.
    selection_metric : str
        ``"EER"`` or ``"loss"``, the recipe's ``selection_metric``.
    """
    checkpoint = os.path.abspath(str(checkpoint))
    single = os.path.isfile(os.path.join(checkpoint, "CKPT.yaml"))
    folder = os.path.dirname(checkpoint) if single else checkpoint
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
    checkpointer = Checkpointer(folder, recoverables=modules)
    rank = _rank_checkpoints(selection_metric)
    candidates = checkpointer.list_checkpoints()
    if single:
        candidates = [c for c in candidates if os.path.abspath(c.path) == checkpoint]
    if not candidates:
        raise FileNotFoundError(f"no CKPT+* checkpoint found in {folder}")
    best = max(candidates, key=rank)
    problem = incomplete_checkpoint(best, modules)
    if problem:  # a clear error, not a zip or unpickling error from torch
        raise RuntimeError(f"checkpoint {best.path} cannot be loaded: {problem}")
    checkpointer.load_checkpoint(best)
    return best


def holds_branch_modules(checkpoint):
    """Whether ``checkpoint`` (a ``CKPT+*`` folder or a folder of them) holds
    one branch's ``fusion`` and ``head`` (a multi-depth or branched run's
    branch folder) rather than a run's ``ssl`` and ``head``.

    Example
    -------
    >>> folder = getfixture("tmp_path") / "CKPT+1"
    >>> folder.mkdir()
    >>> _ = (folder / "CKPT.yaml").write_text("end-of-epoch: true")
    >>> _ = (folder / "fusion.ckpt").write_bytes(b"")
    >>> holds_branch_modules(folder), holds_branch_modules(folder.parent)
    (True, True)
    """
    checkpoint = os.path.abspath(str(checkpoint))
    single = os.path.isfile(os.path.join(checkpoint, "CKPT.yaml"))
    folders = [checkpoint] if single else glob.glob(os.path.join(glob.escape(checkpoint), "CKPT+*"))
    return any(os.path.isfile(os.path.join(folder, "fusion.ckpt")) for folder in folders)
