#!/usr/bin/env python3
"""Cost of the audio integrity pass of preparation, at the full ASVspoof 2019
LA file count (121,461 files: train 25,380, dev 24,844, eval 71,237).

The real protocols (``--protocols``) name the files; the audio is a tree of
hard links to ``--sources`` short FLAC files of real ASVspoof lengths (so it
costs no disk space, and every file is in the page cache after an untimed
warm-up pass: the figures are the decoding cost, not the disk's; a cold
disk adds its read time to every pass). Rows, each timed once on the same
tree:

- header pass: ``soundfile.info`` on every file, what preparation did
  before (the baseline, 1.00x);
- header pass again: the control row, which should read about 1.00x;
- tail pass: ``lobes.dataio.audio_checks.scan_files(mode="tail")`` with
  ``--workers`` processes, what preparation adds;
- tail pass, cached: the same call again (a rerun of preparation);
- full decode (``--full``, on ``--full-limit`` files): what the recipe
  option ``nonfinite_audio: skip`` costs on its first run.

    python benchmarks/integrity.py --workers 2
    python benchmarks/integrity.py --limit 20000 --full   # quicker look
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
from tqdm import tqdm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from lobes.dataio.audio_checks import scan_files  # noqa: E402

PROTOCOLS = "/work/shared/data/asvspoof2019_protocols"
SPLIT_FILES = {"train": "ASVspoof2019.LA.cm.train.trn.txt", "dev": "ASVspoof2019.LA.cm.dev.trl.txt",
               "eval": "ASVspoof2019.LA.cm.eval.trl.txt"}


def protocol_ids(folder, limit=None):
    """``[(split, utt_id)]`` of the three protocols, at most ``limit``."""
    ids = []
    for split, name in SPLIT_FILES.items():
        with open(os.path.join(folder, name), encoding="utf-8") as fin:
            ids += [(split, line.split()[1]) for line in fin if line.strip()]
    return ids[:limit] if limit else ids


def build_tree(root, ids, n_sources, seed=0):
    """Hard links ``root/LA/ASVspoof2019_LA_<split>/flac/<id>.flac`` to
    ``n_sources`` FLACs of 1.5-6 s (ASVspoof 2019 LA's range of most files)."""
    rng = np.random.default_rng(seed)
    sources = []
    for index in range(n_sources):
        path = os.path.join(root, f"source{index}.flac")
        seconds = rng.uniform(1.5, 6.0)
        sf.write(path, 0.1 * rng.standard_normal(int(seconds * 16000)), 16000)
        sources.append(path)
    paths = []
    for index, (split, utt_id) in enumerate(tqdm(ids, desc="linking", unit="file", mininterval=2)):
        folder = os.path.join(root, "LA", f"ASVspoof2019_LA_{split}", "flac")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{utt_id}.flac")
        os.link(sources[index % n_sources], path)
        paths.append(path)
    return paths


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocols", default=PROTOCOLS)
    parser.add_argument("--limit", type=int, help="use only the first N protocol entries")
    parser.add_argument("--sources", type=int, default=8, help="distinct FLAC files linked to")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--full", action="store_true", help="also time a full decode")
    parser.add_argument("--full-limit", type=int, default=10000)
    args = parser.parse_args(argv)

    ids = protocol_ids(args.protocols, args.limit)
    with tempfile.TemporaryDirectory(prefix="integrity-") as root:
        paths = build_tree(root, ids, args.sources)
        cache = os.path.join(root, "integrity.json")
        for path in paths:  # warm-up, untimed: inode and page caches as in every row
            sf.info(path)
        rows = [
            ("header pass (soundfile.info)", len(paths),
             timed(lambda: [sf.info(p) for p in paths])),
            ("header pass again (control)", len(paths),
             timed(lambda: [sf.info(p) for p in paths])),
            (f"tail pass, {args.workers} workers", len(paths),
             timed(lambda: scan_files(paths, "tail", args.workers, cache, desc="tail"))),
            ("tail pass, cached (rerun)", len(paths),
             timed(lambda: scan_files(paths, "tail", args.workers, cache, desc="tail"))),
        ]
        if args.full:
            subset = paths[: args.full_limit]
            rows.append((f"full decode, {args.workers} workers", len(subset),
                         timed(lambda: scan_files(subset, "full", args.workers, None, desc="full"))))
    base = rows[0][2] / rows[0][1]
    print(f"\n{len(ids)} files, {args.sources} linked sources, {os.cpu_count()} CPUs\n")
    print("| pass | files | seconds | ms per file | x header pass |")
    print("|---|---:|---:|---:|---:|")
    for name, n, seconds in rows:
        per_file = seconds / n
        print(f"| {name} | {n} | {seconds:.1f} | {1000 * per_file:.3f} | {per_file / base:.2f}x |")


if __name__ == "__main__":
    main()
