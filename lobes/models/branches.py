"""Branches of one training run: every (head, depth, seed) of a sweep cell.

A frozen encoder gives the same features to every head, depth and seed of
one (SSL, dataset), so they can all be trained as branches of one run on one
encoder pass (``--n_layers="[2, 4, 6, 12]" --heads="[ffn, aasist]"
--init_seeds="[1, 42, 1234]"``). Each branch has its own fusion weights and
head, initialised from its seed, and its own outputs in
``<output_folder>/<head>/N<n>/seed<s>/``. A multi-depth run (a list of depths
alone) keeps its ``<output_folder>/N<n>/`` layout.
"""

import json
import os
from dataclasses import dataclass

import torch

from lobes.models.heads.registry import HEADS, gives_frame_logits, head_name
from lobes.utils.files import atomic_write_text
from lobes.utils.run_folder import SINGLE_RUN, branch_name, depth_name, is_branch_name

# What kind of run a plan is, recorded on each of its branches.
SINGLE = "single"  # one model; its branch is the output folder itself
DEPTHS = "depths"  # one branch per depth of an n_layers list, in N<n>/
BRANCHED = "branched"  # one branch per (head, depth, seed), in <head>/N<n>/seed<s>/


@dataclass(frozen=True)
class Branch:
    """One (head, depth, seed) of a run and the subfolder of its outputs.

    ``kind`` says which run it belongs to (``SINGLE``, ``DEPTHS`` or
    ``BRANCHED``). ``name`` is its output folder relative to the run's
    (``SINGLE_RUN``, ``"."``, for a single run). ``seed`` is the seed of its
    initialisation in a branched run; a single run's and a depth branch's
    draw from the run's seeded random stream instead (seed None).
    """

    head: str
    depth: int
    seed: int
    name: str
    kind: str = BRANCHED


def _as_list(option, value, kind):
    """``value`` as a list of ``kind``, refusing empty lists and repeats."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ValueError(f"{option} is an empty list: give at least one value")
    try:
        values = [kind(v) for v in values]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{option}={value!r}: every entry must be a {kind.__name__}") from err
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{option}={value!r} lists {repeated} more than once")
    return values


def plan_branches(n_layers, head_class, seed, heads=None, init_seeds=None):
    """The branches of a run: one, named None, for a single run.

    Arguments
    ---------
    n_layers : int or list of int
        The YAML's ``n_layers``.
    head_class : class or str
        The YAML's own head (``head_class``), or its recorded name
        (``lobes.models.heads.registry.head_name``).
    seed : int
        The run's seed (the batch order; and the initialisation of a
        single-seed run).
    heads, init_seeds : list, optional
        The YAML's ``heads`` (names of ``HEADS``, or the own head's) and
        ``init_seeds``; ``None``: only ``head_class`` and ``seed``.

    Example
    -------
    >>> plan_branches(4, "ffn", 1)
    [Branch(head='ffn', depth=4, seed=None, name='.', kind='single')]
    >>> [b.name for b in plan_branches([2, 4], "ffn", 1)]
    ['N2', 'N4']
    >>> [b.name for b in plan_branches(2, "ffn", 1, heads=["ffn", "aasist"], init_seeds=[1, 7])]
    ['ffn/N2/seed1', 'ffn/N2/seed7', 'aasist/N2/seed1', 'aasist/N2/seed7']
    >>> plan_branches(2, "ffn", 1, heads=["lstm"])
    Traceback (most recent call last):
    ...
    ValueError: heads lists unknown head 'lstm'; known heads: aasist, ffn (and the YAML's own head_class)
    """
    own = head_class if isinstance(head_class, str) or head_class is None else head_name(head_class)
    multi_depth = isinstance(n_layers, (list, tuple))
    depths = _as_list("n_layers", n_layers, int)
    if heads is None and init_seeds is None:
        if not multi_depth:
            return [Branch(own, depths[0], None, SINGLE_RUN, SINGLE)]
        # Depth branches keep the run's seeded random stream (seed None).
        return [Branch(own, d, None, depth_name(d), DEPTHS) for d in sorted(depths)]
    head_names = _as_list("heads", [own] if heads is None else heads, str)
    # Utterance heads only: a frame head trains alone (PartialSpoof's segment task).
    utterance_heads = sorted(name for name, cls in HEADS.items() if not gives_frame_logits(cls))
    for head in head_names:
        if head not in utterance_heads and head != own:
            raise ValueError(
                f"heads lists unknown head {head!r}; known heads: {', '.join(utterance_heads)} "
                "(and the YAML's own head_class)"
            )
    seeds = _as_list("init_seeds", [seed] if init_seeds is None else init_seeds, int)
    return [
        Branch(head, d, s, branch_name(head, d, s), BRANCHED)
        for head in head_names
        for d in sorted(depths)
        for s in seeds
    ]


def is_single_run(plan):
    """True for the plan of a single run (one branch, the output folder itself).

    Example
    -------
    >>> is_single_run(plan_branches(4, "ffn", 1)), is_single_run(plan_branches([4], "ffn", 1))
    (True, False)
    """
    return len(plan) == 1 and plan[0].kind == SINGLE


def seeded(seed, build):
    """``build()`` with torch's RNG seeded by ``seed``, leaving the caller's
    RNG state as it was (the batch order must not depend on the branches);
    ``build()`` as it is for ``seed=None``."""
    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()



BRANCH_SEMANTICS = (
    "branched run: the seed sets this branch's initialisation (fusion and head); "
    "the batch order (from the run's seed) and the dropout random stream are shared by all "
    "branches of the run. In the paper a seed also set the data order."
)


def check_branch_folders(output_folder, branches):
    """Refuses branch folders in ``output_folder`` that this run does not
    train (left by a run of another configuration), so that a results tree
    never mixes two configurations.

    Example
    -------
    >>> import pathlib
    >>> out = pathlib.Path(getfixture("tmp_path"))
    >>> (out / "ffn" / "N3" / "seed1").mkdir(parents=True)
    >>> check_branch_folders(str(out), plan_branches(2, "ffn", 1, heads=["ffn"]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ... holds branch folder ffn/N3/seed1, which this run (heads, n_layers, init_seeds) does not train: ...
    """
    expected = {b.name for b in branches}
    head_folders = set(HEADS) | {b.head for b in branches}
    found = []
    if not os.path.isdir(output_folder):
        return
    for head in sorted(os.listdir(output_folder)):
        head_dir = os.path.join(output_folder, head)
        if head not in head_folders or not os.path.isdir(head_dir):
            continue
        for depth in sorted(os.listdir(head_dir)):
            depth_dir = os.path.join(head_dir, depth)
            if not os.path.isdir(depth_dir):
                continue
            for seed_dir in sorted(os.listdir(depth_dir)):
                name = f"{head}/{depth}/{seed_dir}"
                if is_branch_name(name) and name not in expected:
                    found.append(name)
    if found:
        raise ValueError(
            f"{output_folder} holds branch folder {found[0]}, which this run (heads, n_layers, "
            f"init_seeds) does not train: it comes from another configuration. Use another "
            f"output_folder or remove {os.path.join(output_folder, found[0])}"
        )


class BranchModel(torch.nn.Module):
    """One branch's fusion and head as one module: shared layers -> logits.

    The trainer calls one branch at a time on the shared encoder output, so
    that only one branch's graph is alive at once; under DDP each branch is
    wrapped on its own, so a stopped branch (never called again) leaves no
    unused parameters in any wrapper.
    """

    def __init__(self, fusion, head):
        super().__init__()
        self.fusion, self.head = fusion, head

    def forward(self, layers, mask, frame_lens):
        """(B, N_max, T, C) stacked layers -> the head's logits ((B, 2), or
        (B, T, 2) for a frame head)."""
        return self.head(self.fusion(layers[:, : self.fusion.n_layers], mask), frame_lens)


def check_branch_list(output_folder, branches):
    """Refuses to reuse ``output_folder`` (``branches.json``, written by the
    run) for another set of branches: its checkpoint would not fit."""
    path = os.path.join(output_folder, "branches.json")
    names = [b.name for b in branches]
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as fin:
            previous = json.load(fin)
        if previous != names:
            raise ValueError(
                f"{output_folder} holds a run of other branches ({path}: {previous}); this run "
                f"(n_layers, heads, init_seeds) has {names}. Use another output_folder"
            )
    return path, names


def claim_branch_folders(output_folder, branches, write=True):
    """Before a branched run trains: refuses an ``output_folder`` holding
    another configuration's branches (``check_branch_folders``,
    ``check_branch_list``), then lists this run's in ``branches.json``
    (``write``: False on the ranks other than the first).

    Example
    -------
    >>> import pathlib
    >>> out = pathlib.Path(getfixture("tmp_path"))
    >>> claim_branch_folders(str(out), plan_branches(2, "ffn", 1, heads=["ffn"]))
    >>> json.loads((out / "branches.json").read_text())
    ['ffn/N2/seed1']
    """
    check_branch_folders(output_folder, branches)
    path, names = check_branch_list(output_folder, branches)
    if write:
        atomic_write_text(path, json.dumps(names, indent=1) + "\n")
