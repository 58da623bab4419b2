"""torch DDP as SpeechBrain drives it, plus what SpeechBrain leaves out.

A recipe started by ``torchrun`` (``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` set)
joins the process group in ``init_distributed``. SpeechBrain then shards the
*training* data and wraps the trainable modules in DDP. It scores dev and test
sets on every rank, though: K times the work and K copies of every output.
The helpers here shard scoring too (``shard_sampler``), gather the score
records of all ranks by trial id (``gather_unique``) and let rank 0 alone
write files (``if_main_process``).

Without ``torchrun`` every function is a no-op and a run behaves exactly as a
single-process one.
"""

import datetime
import gc
import logging
import os

import torch
import torch.distributed as dist
from speechbrain.utils.distributed import if_main_process, is_distributed_initialized
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)

BACKENDS = ("gloo", "nccl")
DEFAULT_TIMEOUT_S = 3600

__all__ = [
    "BACKENDS",
    "check_split_sizes",
    "ddp_wrap",
    "gather_unique",
    "if_main_process",
    "init_distributed",
    "is_launched",
    "leave_process_group",
    "shard_sampler",
    "unwrap",
    "world_size",
]


def is_launched():
    """True when the process was started by ``torchrun`` (or a launcher
    that sets the same environment)."""
    return os.environ.get("RANK") is not None and os.environ.get("LOCAL_RANK") is not None


def world_size():
    """Number of processes of the job (1 without torchrun).

    Example
    -------
    >>> world_size()
    1
    """
    if is_distributed_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1)) if is_launched() else 1


def check_launch(run_opts):
    """Refuses a distributed launch that cannot work, before any training.

    Arguments
    ---------
    run_opts : dict
        SpeechBrain's run options (``distributed_backend``, ``device``).

    Example
    -------
    >>> check_launch({"distributed_backend": "gloo", "device": "cpu"})  # no torchrun: nothing to check
    """
    if not is_launched():
        return
    backend = run_opts.get("distributed_backend", "nccl")
    if backend not in BACKENDS:
        raise ValueError(
            f"--distributed_backend={backend}: use one of {BACKENDS} "
            "(nccl on GPUs, gloo on CPU)"
        )
    device = str(run_opts.get("device") or "")
    n_gpus = torch.cuda.device_count()
    if backend == "nccl":
        if n_gpus == 0:
            raise ValueError(
                "--distributed_backend=nccl needs GPUs, and none is visible: on CPU run "
                "torchrun ... --distributed_backend=gloo --device=cpu"
            )
        if device.startswith("cpu"):
            raise ValueError("--distributed_backend=nccl with --device=cpu: nccl runs on GPUs; use gloo on CPU")
    if device.startswith("cuda") or backend == "nccl":
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        if local_ranks > n_gpus:
            raise ValueError(
                f"--nproc_per_node={local_ranks} ranks on this node but only {n_gpus} GPU(s): "
                f"give --nproc_per_node at most {n_gpus}"
            )


def init_distributed(run_opts, timeout_s=DEFAULT_TIMEOUT_S):
    """Joins the torchrun process group (a no-op without torchrun).

    SpeechBrain's ``ddp_init_group`` does the same with a fixed two-hour
    timeout; this one checks the launch first (``check_launch``) and takes
    the timeout from the recipe (``ddp_timeout`` in seconds), which bounds how
    long the surviving ranks wait for a rank that died on another node.
    On GPUs each rank takes the GPU of its local rank.
    """
    check_launch(run_opts)
    if not is_launched() or is_distributed_initialized():
        return
    backend = run_opts.get("distributed_backend", "nccl")
    local_rank = int(os.environ["LOCAL_RANK"])
    if backend == "nccl" or str(run_opts.get("device") or "").startswith("cuda"):
        run_opts["device"] = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend=backend,
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        timeout=datetime.timedelta(seconds=float(timeout_s)),
    )
    logger.info(
        "rank %d of %d joined the %s process group (timeout %ss)",
        dist.get_rank(), dist.get_world_size(), backend, timeout_s,
    )


def check_split_sizes(datasets):
    """Every split must give each rank at least one trial.

    Example
    -------
    >>> check_split_sizes({"dev": [1, 2, 3]})  # one process: any non-empty split
    """
    n_ranks = world_size()
    for name, dataset in datasets.items():
        if len(dataset) < n_ranks:
            raise ValueError(
                f"split {name!r} holds {len(dataset)} trials, fewer than the {n_ranks} ranks "
                f"of this job: lower --nproc_per_node (or --nnodes)"
            )


def shard_sampler(dataset):
    """A sampler giving this rank its shard of a scoring set, in order.

    ``DistributedSampler`` pads the shards to equal length by repeating a
    few trials; ``gather_unique`` drops those duplicates again. Returns None
    outside a distributed job.
    """
    if not is_distributed_initialized():
        return None
    return torch.utils.data.DistributedSampler(dataset, shuffle=False, drop_last=False)


def gather_unique(items, key):
    """All ranks' ``items`` on every rank, each ``key`` once, in dataset order.

    ``shard_sampler`` deals trial ``i`` to rank ``i % K``, so taking the
    ranks' items round-robin restores the dataset order; the trials that
    ``DistributedSampler`` repeated to pad the shards come last and are
    dropped. Outside a distributed job ``items`` come back unchanged. The
    result is the same on every rank, so every rank makes the same decision
    from it (checkpoint selection, early stopping).

    Arguments
    ---------
    items : list
        This rank's items (picklable), in the order its shard was scored.
    key : callable
        Identity of an item (e.g. the trial id).

    Example
    -------
    >>> gather_unique([3, 1], key=lambda x: x)
    [3, 1]
    >>> _interleave_unique([[0, 2, 0], [1, 3]], key=lambda x: x)  # two ranks, trial 0 padded in
    [0, 1, 2, 3]
    """
    if not is_distributed_initialized():
        return list(items)
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, list(items))
    return _interleave_unique(gathered, key)


def _interleave_unique(per_rank, key):
    unique = {}
    for position in range(max(len(items) for items in per_rank)):
        for items in per_rank:
            if position < len(items):
                unique.setdefault(key(items[position]), items[position])
    return list(unique.values())


def all_sum(values):
    """Element-wise sum of a list of floats over all ranks (unchanged
    without a distributed job).

    Example
    -------
    >>> all_sum([1.5, 2.0])
    [1.5, 2.0]
    """
    if not is_distributed_initialized():
        return list(values)
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, [float(v) for v in values])
    return [sum(column) for column in zip(*gathered)]


def leave_process_group():
    """Waits for every rank, then leaves the process group (a no-op without
    torchrun).

    Call it after dropping the DDP wrappers, which hold the group
    (``SpoofBrain.leave_distributed``): a group destroyed while a wrapper
    lives on, or never destroyed, dies at interpreter exit, where gloo may
    abort a rank after all its work is done ("terminate called without an
    active exception": seen in CI, and in about 1 of 20 two-rank runs of a
    bare DDP script here). The garbage collection frees wrappers caught in
    reference cycles first.

    Example
    -------
    >>> leave_process_group()  # one process: nothing to leave
    """
    if not is_distributed_initialized():
        return
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def ddp_wrap(module, device, **kwargs):
    """``module`` in a DDP wrapper on ``device`` (``"cpu"`` or a GPU);
    ``kwargs`` go to ``DistributedDataParallel``."""
    device_ids = None if str(device) == "cpu" else [device]
    return DistributedDataParallel(module, device_ids=device_ids, **kwargs)


def unwrap(module):
    """The module inside a DDP wrapper (the module itself otherwise).

    Example
    -------
    >>> layer = torch.nn.Linear(2, 2)
    >>> unwrap(layer) is layer
    True
    """
    return module.module if isinstance(module, DistributedDataParallel) else module
