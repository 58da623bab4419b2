"""Runs a recipe over SSL models x heads x depths x seeds, resumably.

    python -m lobes.sweep --recipe ASVspoof2019 --hparams ffn.yaml aasist.yaml \\
        --ssl microsoft/wavlm-base-plus facebook/wav2vec2-base --n_layers 2 4 6 12 \\
        --seeds 1 42 1234 --root results/sweep -- --data_folder=/data/ASVspoof2019

Each run gets its own folder, ``<root>/<recipe>/<ssl>/<head>/N<n>/seed<seed>``.
Finished runs are skipped; an interrupted run resumes from its checkpoint
(the recipe does that). With ``--multi_depth`` every (SSL, head, seed) is one
run training all depths on one encoder pass, in
``<root>/<recipe>/<ssl>/<head>/N<a>-<b>-.../seed<seed>/N<n>/``. Runs are
sequential; a failed run is reported and the others still run.

With ``--branched`` every (SSL, recipe) is ONE run training every head x
depth x seed as a branch of one encoder pass (``lobes.models.branches``): heads are
the ``--hparams`` stems (the first file's settings serve all), outputs in the
same ``<root>/<recipe>/<ssl>/<head>/N<n>/seed<seed>/`` folders, the run's own
files (checkpoint, log, ``branches.json``) in ``<root>/<recipe>/<ssl>/``. A
rerun resumes it: branches that finished (stopped early or scored) are not
trained again, unfinished ones continue from the checkpoint.

With ``--nproc_per_node K`` every run trains on K processes through
``torchrun`` (give the backend after ``--``: ``--distributed_backend=gloo
--device=cpu`` on CPU). For several nodes, start the same command on every
node with its ``--node_rank`` and the shared ``--nnodes --rdzv_endpoint``;
each run gets its own rendezvous id (``<rdzv_id>-<run index>``).
"""

import argparse
import itertools
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from tqdm import tqdm

from lobes.utils.run_folder import branch_name, depth_name, read_results, results_path, seed_name, ssl_name

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Run:
    """One training run of a sweep."""

    recipe: str
    hparams: str
    ssl: str
    depths: tuple
    seed: int
    folder: str
    launcher: tuple = ()  # e.g. torchrun and its options; empty: one process
    heads: tuple = ()  # branched run: the heads; depths and seeds are the lists
    seeds: tuple = ()

    @property
    def head(self):
        """The head this run trains: its YAML's stem (``ffn``, ``aasist``)."""
        return os.path.splitext(os.path.basename(self.hparams))[0]

    def result_files(self):
        """results.json of every depth (or branch) the run trains."""
        if self.heads:
            return [results_path(os.path.join(self.folder, branch_name(h, d, s)))
                    for h in self.heads for d in self.depths for s in self.seeds]
        if len(self.depths) == 1:
            return [results_path(self.folder)]
        return [results_path(os.path.join(self.folder, depth_name(d))) for d in self.depths]

    def n_done(self):
        """How many of ``result_files`` have scored at least one test set."""
        done = 0
        for path in self.result_files():
            done += bool(read_results(os.path.dirname(path), missing_ok=True).get("test_sets"))
        return done

    def is_done(self):
        """True when every depth (or branch) has scored at least one test set."""
        return self.n_done() == len(self.result_files())

    def command(self, extra_overrides):
        """The recipe command line of this run."""
        recipe_dir = os.path.join(REPO, "recipes", self.recipe)
        n_layers = self.depths[0] if len(self.depths) == 1 else list(self.depths)
        branched = (
            [f"--n_layers={list(self.depths)}", f"--heads=[{', '.join(self.heads)}]",
             f"--init_seeds={list(self.seeds)}"] if self.heads else [f"--n_layers={n_layers}"]
        )
        return [
            *(self.launcher or (sys.executable,)),
            os.path.join(recipe_dir, "train.py"),
            os.path.join(recipe_dir, "hparams", self.hparams),
            f"--output_folder={self.folder}",
            f"--ssl_source={self.ssl}",
            *branched,
            f"--seed={self.seed}",
            *extra_overrides,
        ]


def plan_branched_runs(recipe, hparams_files, ssl_sources, depths, seeds, root):
    """One branched run per SSL: every head (``hparams_files`` stems) x
    depth x seed; the batch order comes from the first seed.

    Example
    -------
    >>> run, = plan_branched_runs("HABLA", ["ffn.yaml", "aasist.yaml"], ["a/wavlm"], [4, 2], [1, 42], "out")
    >>> run.folder, run.hparams, run.heads, run.depths, run.seeds
    ('out/HABLA/wavlm', 'ffn.yaml', ('ffn', 'aasist'), (2, 4), (1, 42))
    >>> run.result_files()[1]
    'out/HABLA/wavlm/ffn/N2/seed42/results.json'
    """
    from lobes.models.branches import plan_branches
    from lobes.models.heads import HEADS

    heads = tuple(os.path.splitext(os.path.basename(h))[0] for h in hparams_files)
    unknown = [h for h in heads if h not in HEADS]
    if unknown:
        raise ValueError(f"--branched trains the heads named by --hparams; {unknown} "
                         f"is not one of {sorted(HEADS)}")
    plan_branches(list(depths), heads[0], seeds[0], heads=list(heads), init_seeds=list(seeds))  # checks the lists
    return [
        Run(recipe, hparams_files[0], ssl, tuple(sorted(depths)), seeds[0],
            os.path.join(root, recipe, ssl_name(ssl)), heads=heads, seeds=tuple(seeds))
        for ssl in ssl_sources
    ]


def plan_runs(recipe, hparams_files, ssl_sources, depths, seeds, root, multi_depth=False):
    """Every combination, each with its own folder named from its settings.

    Example
    -------
    >>> runs = plan_runs("HABLA", ["ffn.yaml"], ["a/wavlm"], [2, 4], [1], "out")
    >>> [r.folder for r in runs]
    ['out/HABLA/wavlm/ffn/N2/seed1', 'out/HABLA/wavlm/ffn/N4/seed1']
    >>> plan_runs("HABLA", ["ffn.yaml"], ["a/wavlm"], [4, 2], [1], "out", True)[0].folder
    'out/HABLA/wavlm/ffn/N2-4/seed1'
    """
    depth_groups = [tuple(sorted(set(depths)))] if multi_depth else [(d,) for d in depths]
    runs = []
    for hparams, ssl, group, seed in itertools.product(hparams_files, ssl_sources, depth_groups, seeds):
        head = os.path.splitext(os.path.basename(hparams))[0]
        depth_dir = depth_name("-".join(str(d) for d in group))
        folder = os.path.join(root, recipe, ssl_name(ssl), head, depth_dir, seed_name(seed))
        runs.append(Run(recipe, hparams, ssl, group, seed, folder))
    return runs


def torchrun_launcher(nproc_per_node, nnodes=1, node_rank=None, rdzv_endpoint=None,
                      rdzv_backend="c10d", rdzv_id=None):
    """The ``torchrun`` prefix of a run's command, or ``()`` for one process.

    Example
    -------
    >>> torchrun_launcher(1)
    ()
    >>> torchrun_launcher(2)[-2:]
    ('--standalone', '--nproc_per_node=2')
    >>> torchrun_launcher(4, nnodes=2, node_rank=1, rdzv_endpoint="node0:29500", rdzv_id="s-3")[-5:]
    ('--nproc_per_node=4', '--nnodes=2', '--node_rank=1', '--rdzv_backend=c10d', '--rdzv_endpoint=node0:29500')
    """
    if nproc_per_node < 1 or nnodes < 1:
        raise ValueError(f"--nproc_per_node and --nnodes must be at least 1, got {nproc_per_node} and {nnodes}")
    if nproc_per_node == 1 and nnodes == 1:
        return ()
    prefix = (sys.executable, "-m", "torch.distributed.run")
    if nnodes == 1:
        return (*prefix, "--standalone", f"--nproc_per_node={nproc_per_node}")
    if rdzv_endpoint is None or node_rank is None:
        raise ValueError("--nnodes > 1 needs --node_rank and --rdzv_endpoint (host:port of node 0)")
    options = [f"--nproc_per_node={nproc_per_node}", f"--nnodes={nnodes}", f"--node_rank={node_rank}",
               f"--rdzv_backend={rdzv_backend}", f"--rdzv_endpoint={rdzv_endpoint}"]
    if rdzv_id is not None:
        options.insert(0, f"--rdzv_id={rdzv_id}")
    return (*prefix, *options)


def _epochs_logged(folder):
    path = os.path.join(folder, "train_log.txt")
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as fin:
        return sum(1 for line in fin if line.startswith("epoch:"))


def execute(run, extra_overrides, n_epochs=None, poll_seconds=2.0):
    """Runs one training; its output goes to ``<folder>/sweep.log``.

    Shows a bar over epochs (read from the run's train log). Returns the
    exit code.
    """
    os.makedirs(run.folder, exist_ok=True)
    log_path = os.path.join(run.folder, "sweep.log")
    with open(log_path, "a", encoding="utf-8") as log, tqdm(
        total=n_epochs, desc="  epochs", unit="epoch", leave=False
    ) as bar:
        bar.update(_epochs_logged(run.folder))
        process = subprocess.Popen(
            run.command(extra_overrides), stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
        while process.poll() is None:
            time.sleep(poll_seconds)
            bar.update(_epochs_logged(run.folder) - bar.n)
        return process.returncode


def _overrides_value(overrides, key):
    for item in overrides:
        if item.startswith(f"--{key}="):
            return item.split("=", 1)[1]
    return None


def parse_args(argv):
    """The options of ``python -m lobes.sweep``."""
    parser = argparse.ArgumentParser(
        description="Run a recipe over SSL models, heads, depths and seeds.",
        epilog="Arguments after '--' go to every run (e.g. --data_folder=...).",
    )
    parser.add_argument("--recipe", required=True, help="folder name under recipes/")
    parser.add_argument("--hparams", nargs="+", default=["ffn.yaml"], help="files in recipes/<recipe>/hparams/")
    parser.add_argument("--ssl", nargs="+", required=True, help="hub ids or local folders")
    parser.add_argument("--n_layers", nargs="+", type=int, required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--root", default="results/sweep")
    parser.add_argument("--multi_depth", action="store_true", help="train all depths on one encoder pass")
    parser.add_argument("--branched", action="store_true",
                        help="one run per SSL: every head x depth x seed as a branch of one encoder pass")
    parser.add_argument("--dry_run", action="store_true", help="list the runs and their state")
    ddp = parser.add_argument_group("distributed (torchrun)")
    ddp.add_argument("--nproc_per_node", type=int, default=1, help="processes (GPUs) per run and node")
    ddp.add_argument("--nnodes", type=int, default=1)
    ddp.add_argument("--node_rank", type=int)
    ddp.add_argument("--rdzv_endpoint", help="host:port of node 0 (multi-node)")
    ddp.add_argument("--rdzv_backend", default="c10d")
    ddp.add_argument("--rdzv_id", default="lobes-sweep", help="prefix of each run's rendezvous id")
    if "--" in argv:
        split = argv.index("--")
        args = parser.parse_args(argv[:split])
        args.extra = argv[split + 1 :]
    else:
        args = parser.parse_args(argv)
        args.extra = []
    recipe_dir = os.path.join(REPO, "recipes", args.recipe)
    if not os.path.isfile(os.path.join(recipe_dir, "train.py")):
        parser.error(f"no recipe {args.recipe!r}: {recipe_dir}/train.py not found")
    for hparams in args.hparams:
        if not os.path.isfile(os.path.join(recipe_dir, "hparams", hparams)):
            parser.error(f"no hparams file {os.path.join(recipe_dir, 'hparams', hparams)}")
    return args


def main(argv=None):
    """``python -m lobes.sweep``: plans and runs (or prints) every run of a sweep."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.branched and args.multi_depth:
            raise ValueError("--branched already trains every depth on one pass: drop --multi_depth")
        if args.branched:
            runs = plan_branched_runs(args.recipe, args.hparams, args.ssl, args.n_layers, args.seeds, args.root)
        else:
            runs = plan_runs(args.recipe, args.hparams, args.ssl, args.n_layers, args.seeds, args.root,
                             args.multi_depth)
        for index, run in enumerate(runs):
            run.launcher = torchrun_launcher(
                args.nproc_per_node, args.nnodes, args.node_rank, args.rdzv_endpoint,
                args.rdzv_backend, f"{args.rdzv_id}-{index}",
            )
    except ValueError as err:
        print(f"lobes.sweep: {err}", file=sys.stderr)
        return 2
    epochs = _overrides_value(args.extra, "number_of_epochs")
    n_epochs = int(epochs) if epochs else None
    failed = []
    for index, run in enumerate(runs, 1):
        state = "done" if run.is_done() else "to run"
        if run.heads:
            state += f", {run.n_done()} of {len(run.result_files())} branches done"
        print(f"[{index}/{len(runs)}] {run.folder} ({state})", flush=True)
        if args.dry_run or run.is_done():
            continue
        code = execute(run, args.extra, n_epochs)
        if code != 0:
            failed.append(run)
            print(f"  failed with exit code {code}; see {os.path.join(run.folder, 'sweep.log')}", flush=True)
    if failed:
        print(f"{len(failed)} of {len(runs)} runs failed", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
