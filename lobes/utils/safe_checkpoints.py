"""Loading checkpoint files as tensors only, whatever the environment says.

``torch.load`` unpickles: a checkpoint file can name any function to call.
torch refuses that by default, but only by default: the variable
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (set on some clusters for old
checkpoints) turns the refusal off for every call that does not pass
``weights_only`` itself, and SpeechBrain's checkpoint hooks pass none. Here
every checkpoint file is read with ``weights_only=True`` explicitly, and a
file that is not a plain tensor archive is refused with one line naming it.
``use_safe_load_hooks`` makes this SpeechBrain's default way of loading
modules, optimizers, schedulers and scalers (its documented extension
point, ``DEFAULT_LOAD_HOOKS``).
"""

import pickle
import re
import zipfile

import torch
from speechbrain.utils import checkpoints as sb_checkpoints


class UnsafeCheckpointError(ValueError):
    """A checkpoint file that is not a plain tensor archive; the message names it."""


def load_tensor_archive(path, map_location="cpu"):
    """The contents of the checkpoint file ``path``, loaded with
    ``weights_only=True``: tensors, containers and numbers only.

    Example
    -------
    >>> path = getfixture("tmp_path") / "head.ckpt"
    >>> torch.save({"w": torch.ones(2)}, path)
    >>> load_tensor_archive(path)
    {'w': tensor([1., 1.])}
    >>> torch.save({"f": print}, path)
    >>> load_tensor_archive(path)  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    lobes.utils.safe_checkpoints.UnsafeCheckpointError: .../head.ckpt: refused to load: it is not a plain tensor
    archive (its pickle calls print; a checkpoint must not run code)
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        called = _unsupported_global(str(err))
        raise UnsafeCheckpointError(
            f"{path}: refused to load: it is not a plain tensor archive "
            f"({f'its pickle calls {called}; ' if called else ''}a checkpoint must not run code)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnsafeCheckpointError(f"{path}: not a readable checkpoint ({first_line})") from None


def _unsupported_global(message):
    """The global torch's weights-only unpickler refused, if it names one."""
    match = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", message)
    return match.group(1) if match else None


def safe_recovery(obj, path, end_of_epoch):
    """SpeechBrain load hook: ``obj.load_state_dict`` of the file at
    ``path``, read by ``load_tensor_archive`` (SpeechBrain's key-renaming
    hooks applied, as its own ``torch_recovery`` does)."""
    del end_of_epoch
    state = sb_checkpoints.hook_on_loading_state_dict_checkpoint(load_tensor_archive(path))
    try:
        obj.load_state_dict(state, strict=True)
    except TypeError:  # optimizers and schedulers take no ``strict``
        obj.load_state_dict(state)


def use_safe_load_hooks():
    """Makes ``safe_recovery`` SpeechBrain's default load hook wherever its
    default is ``torch_recovery``; idempotent."""
    for cls, hook in list(sb_checkpoints.DEFAULT_LOAD_HOOKS.items()):
        if hook is sb_checkpoints.torch_recovery:
            sb_checkpoints.DEFAULT_LOAD_HOOKS[cls] = safe_recovery
