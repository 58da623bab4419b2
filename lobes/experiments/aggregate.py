"""Tables and figures from the ``results.json`` files of a sweep.

    python -m lobes.aggregate results/sweep --out results/sweep/summary

Writes, from every ``results.json`` below the folder (partial sweeps too):

- ``eer_table.md`` and ``eer_table.csv``: rows SSL x head x N, one column per
  dataset and test set, mean and standard deviation of the EER (%) over
  seeds; cells without runs stay empty ("-"), never 0. Where the paper
  reports the same SSL, head, N and dataset (``lobes.experiments.paper``, bundled), its
  mean EER and our difference to it stand beside the cell;
- ``heatmap_<ssl>_<head>_N<n>.png``: the mean learned layer weights, one row
  per training dataset (plus an AVERAGE row when there are several), in
  weight units; ``--heatmap_normalise minmax`` rescales each row to [0, 1]
  as the paper's figures do (the colour bar says which);
- ``eer_vs_depth_<dataset>_<test set>.png``: EER against N per SSL and head,
  with the paper's values dashed where it has them, and the 95 % bootstrap
  interval of the seed-mean EER shaded;
- ``noninferiority.md``: per dataset, test set, SSL and head, the smallest
  depth not worse than the full depth by more than ``--margin`` EER points
  (``lobes.experiments.depth_stats``). The EER table's cells then carry
  that interval, ``[low, high]``, and ``*`` where the depth differs from the
  full depth (paired bootstrap, p < 0.05).

The bootstrap resamples test trials; ``--manifest DATASET/SET=CSV``
(repeatable; a recipe manifest with ``ID`` and ``speaker`` columns: any
run's ``manifests/<set>.csv``) resamples that test set's speakers instead,
as each run's own ``results.json`` intervals do.
"""

import argparse
import csv
import os
import sys
from collections import defaultdict

import numpy as np

from lobes.evaluation.score_stats import read_speakers
from lobes.experiments.depth_stats import (
    DEFAULT_MARGIN,
    SpeakerMap,
    cell_suffix,
    depth_statistics,
    format_noninferiority,
    interval_bands,
)
from lobes.experiments.paper import paper_eer
from lobes.experiments.plots import eer_vs_depth_figure, heatmap_figure, min_max, save_figure
from lobes.utils.files import atomic_write_text
from lobes.utils.run_folder import RESULTS_FILE, read_results, results_path, ssl_name

MISSING = "-"
# Every recipe scores dev too (its scores fit the calibration); it selected
# the checkpoint, so its EER is no test result and stays out of the tables.
SELECTION_SET = "dev"


def load_results(root):
    """Every run's results below ``root`` as flat records.

    Each record: dataset, ssl, head, n_layers, seed, layer_weights and
    ``eer`` per test set (dev, the selection set, left out). The dataset comes from the run's config, or else
    from the first folder below ``root`` (the sweep layout).
    """
    records = []
    for folder, _, files in sorted(os.walk(root)):
        if RESULTS_FILE not in files:
            continue
        path = results_path(folder)
        results = read_results(folder)
        config = results.get("config", {})
        if "ssl_source" not in config or "n_layers" not in config:
            raise ValueError(f"{path}: config lacks ssl_source or n_layers")
        dataset = config.get("dataset") or os.path.relpath(path, root).split(os.sep)[0]
        records.append(
            {
                "dataset": dataset,
                "ssl": ssl_name(config["ssl_source"]),
                "head": config.get("head_type", "?"),
                "n_layers": int(config["n_layers"]),
                "seed": config.get("seed"),
                "layer_weights": results.get("layer_weights", []),
                "eer": {
                    name: m["eer"]
                    for name, m in results.get("test_sets", {}).items()
                    if name != SELECTION_SET
                },
                "path": path,
            }
        )
    check_unique(records)
    return records


def check_unique(records):
    """Each setting may appear once per seed, or its mean would count a run twice.

    Example
    -------
    >>> run = {"dataset": "D", "ssl": "s", "head": "ffn", "n_layers": 2, "seed": 1}
    >>> check_unique([dict(run, path="a/results.json"), dict(run, path="b/results.json")])
    Traceback (most recent call last):
    ...
    ValueError: two runs of D s ffn N=2 seed 1: a/results.json and b/results.json; aggregate one of them
    """
    seen = {}
    for record in records:
        key = tuple(record[k] for k in ("dataset", "ssl", "head", "n_layers", "seed"))
        if key in seen:
            raise ValueError(
                f"two runs of {key[0]} {key[1]} {key[2]} N={key[3]} seed {key[4]}: "
                f"{seen[key]} and {record['path']}; aggregate one of them"
            )
        seen[key] = record["path"]


def eer_table(records):
    """``(rows, columns, cells)``: cells[(row, column)] = list of EERs over seeds.

    Rows are (ssl, head, n_layers); columns are (dataset, test set).

    Example
    -------
    >>> recs = [{"dataset": "D", "ssl": "s", "head": "ffn", "n_layers": 2, "eer": {"eval": e}}
    ...         for e in (1.0, 3.0)]
    >>> rows, columns, cells = eer_table(recs)
    >>> rows, columns, cells[(("s", "ffn", 2), ("D", "eval"))]
    ([('s', 'ffn', 2)], [('D', 'eval')], [1.0, 3.0])
    """
    cells = defaultdict(list)
    for record in records:
        row = (record["ssl"], record["head"], record["n_layers"])
        for test_set, eer in record["eer"].items():
            cells[(row, (record["dataset"], test_set))].append(float(eer))
    rows = sorted({row for row, _ in cells})
    columns = sorted({column for _, column in cells})
    return rows, columns, dict(cells)


def mean_std(values):
    """Mean and sample standard deviation (0 for a single value)."""
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return float(array.mean()), std


def paper_cell(row, column):
    """The paper's mean EER for a (ssl, head, N) row and (dataset, test set) column, or None."""
    return paper_eer(row[0], row[1], row[2], column[0], column[1])


def format_markdown(rows, columns, cells, intervals=None):
    """The EER table as Markdown: ``mean ± std (n)`` or ``-``, and where the
    paper has the cell, ``; paper p (Δ d)``.

    Example
    -------
    >>> rows, columns, cells = [("wavlm-large", "aasist", 10)], [("CtrSVDD", "eval")], {
    ...     (("wavlm-large", "aasist", 10), ("CtrSVDD", "eval")): [11.0, 12.0]}
    >>> print(format_markdown(rows, columns, cells).splitlines()[2])
    | wavlm-large | aasist | 10 | 11.50 ± 0.71 (2); paper 10.52 (Δ +0.98) |
    """
    header = ["SSL", "head", "N"] + [f"{d} {t}" for d, t in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells_text = []
        for column in columns:
            values = cells.get((row, column))
            paper = paper_cell(row, column)
            if not values:
                cells_text.append(MISSING if paper is None else f"{MISSING}; paper {paper:.2f}")
                continue
            mean, std = mean_std(values)
            text = f"{mean:.2f} ± {std:.2f} ({len(values)})" + cell_suffix((intervals or {}).get((row, column)))
            if paper is not None:
                text += f"; paper {paper:.2f} (Δ {mean - paper:+.2f})"
            cells_text.append(text)
        lines.append("| " + " | ".join([row[0], row[1], str(row[2])] + cells_text) + " |")
    lines.append("")
    lines.append(
        "EER %, mean ± standard deviation over seeds (number of seeds); [low, high]: 95 % bootstrap "
        "interval of the seed mean over test trials (or speakers: noninferiority.md says which), * "
        "where it differs from the full depth of its "
        "SSL and head (paired bootstrap, p < 0.05; see noninferiority.md). paper: mean EER of "
        "El Kheir et al. (Findings of NAACL 2025, arXiv 2502.03559) for the same SSL, head, N and "
        "dataset; Δ = ours - paper. The paper does not say which SceneFake test set it reports, "
        "nor whether its CtrSVDD EER excludes A14 and acesinger."
    )
    return "\n".join(lines) + "\n"


def write_csv(path, rows, columns, cells):
    """The EER table as CSV: mean, std and number of seeds per column, and
    the paper's mean EER and our difference to it (empty where it has none)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fout:
        writer = csv.writer(fout)
        header = ["ssl", "head", "n_layers"]
        for dataset, test_set in columns:
            header += [
                f"{dataset}/{test_set}/{k}"
                for k in ("eer_mean", "eer_std", "n_seeds", "paper_eer_mean", "diff_vs_paper")
            ]
        writer.writerow(header)
        for row in rows:
            line = list(row)
            for column in columns:
                values = cells.get((row, column))
                paper = paper_cell(row, column)
                paper_text = "" if paper is None else f"{paper:.2f}"
                if values:
                    mean, std = mean_std(values)
                    diff = "" if paper is None else f"{mean - paper:.4f}"
                    line += [f"{mean:.4f}", f"{std:.4f}", len(values), paper_text, diff]
                else:
                    line += ["", "", 0, paper_text, ""]
            writer.writerow(line)


def heatmap_rows(records, ssl, head, n_layers, normalise="none"):
    """Dataset -> mean layer weights over seeds, plus ``AVERAGE`` (the mean
    over datasets) when there are several. With ``normalise="minmax"`` each
    dataset's row is min-max normalised first, as in the paper's figures.

    Example
    -------
    >>> recs = [{"dataset": d, "ssl": "s", "head": "ffn", "n_layers": 2, "layer_weights": w}
    ...         for d, w in (("A", [0.4, 0.6]), ("B", [0.5, 0.5]))]
    >>> {k: v.tolist() for k, v in heatmap_rows(recs, "s", "ffn", 2).items()}
    {'A': [0.4, 0.6], 'B': [0.5, 0.5], 'AVERAGE': [0.45, 0.55]}
    """
    by_dataset = defaultdict(list)
    for record in records:
        if (record["ssl"], record["head"], record["n_layers"]) == (ssl, head, n_layers):
            by_dataset[record["dataset"]].append(record["layer_weights"])
    scale = min_max if normalise == "minmax" else np.asarray
    rows = {d: scale(np.mean(w, axis=0)) for d, w in sorted(by_dataset.items())}
    if len(rows) > 1:
        rows["AVERAGE"] = np.mean(list(rows.values()), axis=0)
    return rows


def depth_curves(rows, cells, column):
    """Our curves ``{"ssl head": [(N, mean, std)]}`` and the paper's
    ``{"ssl head": [(N, eer)]}`` for one column, at the depths we ran."""
    curves, reference = {}, {}
    for ssl, head in sorted({(r[0], r[1]) for r in rows}):
        name = f"{ssl} {head}"
        for row in rows:
            if row[:2] != (ssl, head):
                continue
            if cells.get((row, column)):
                curves.setdefault(name, []).append((row[2], *mean_std(cells[(row, column)])))
                paper = paper_cell(row, column)
                if paper is not None:
                    reference.setdefault(name, []).append((row[2], paper))
    return curves, reference


def manifest_speakers(options):
    """``{(dataset, test set): SpeakerMap}`` from ``--manifest`` options
    ``DATASET/SET=CSV``.

    Example
    -------
    >>> manifest_speakers(["ASVspoof2019/eval"])
    Traceback (most recent call last):
    ...
    ValueError: --manifest ASVspoof2019/eval: give DATASET/SET=CSV, e.g. ASVspoof2019/eval=manifests/eval.csv
    """
    speakers = {}
    for option in options or []:
        column, _, path = option.partition("=")
        dataset, _, test_set = column.partition("/")
        if not (dataset and test_set and path):
            raise ValueError(f"--manifest {option}: give DATASET/SET=CSV, e.g. ASVspoof2019/eval=manifests/eval.csv")
        if (dataset, test_set) in speakers:
            raise ValueError(f"--manifest names {column} twice")
        speakers[(dataset, test_set)] = SpeakerMap(path, read_speakers(path))
    return speakers


def aggregate(root, out, heatmap_normalise="none", margin=DEFAULT_MARGIN, replicates=1000, speakers=None):
    """Writes all tables and figures; returns the list of written paths.
    ``speakers``: ``manifest_speakers``' output (test sets resampled by speaker)."""
    records = load_results(root)
    if not records:
        raise FileNotFoundError(f"no results.json below {root}")
    rows, columns, cells = eer_table(records)
    unknown = sorted(set(speakers or {}) - set(columns))
    if unknown:
        raise ValueError(f"--manifest names {'/'.join(unknown[0])}, which no run below {root} scored; "
                         f"scored: {', '.join('/'.join(c) for c in columns)}")
    os.makedirs(out, exist_ok=True)
    intervals, answers = depth_statistics(records, margin, replicates, speakers=speakers)
    written = [os.path.join(out, "eer_table.md"), os.path.join(out, "eer_table.csv"),
               os.path.join(out, "noninferiority.md")]
    atomic_write_text(written[0], format_markdown(rows, columns, cells, intervals))
    atomic_write_text(written[2], format_noninferiority(answers, intervals, margin))
    write_csv(written[1], rows, columns, cells)
    for ssl, head, n_layers in sorted({(r["ssl"], r["head"], r["n_layers"]) for r in records}):
        hm_rows = heatmap_rows(records, ssl, head, n_layers, heatmap_normalise)
        path = os.path.join(out, f"heatmap_{ssl}_{head}_N{n_layers}.png")
        title = f"{ssl} + {head}, N={n_layers}: mean learned layer weights"
        save_figure(heatmap_figure(hm_rows, title, heatmap_normalise), path)
        written.append(path)
    for column in columns:
        path = os.path.join(out, f"eer_vs_depth_{column[0]}_{column[1]}.png")
        curves, reference = depth_curves(rows, cells, column)
        bands = interval_bands(rows, intervals, column)
        save_figure(eer_vs_depth_figure(curves, f"{column[0]} {column[1]}: EER against depth", reference, bands),
                    path)
        written.append(path)
    return written


def main(argv=None):
    """``python -m lobes.aggregate``: tables, plots and intervals of a sweep's runs."""
    parser = argparse.ArgumentParser(description="Tables and figures from a sweep's results.")
    parser.add_argument("root", help="folder searched for results.json files")
    parser.add_argument("--out", help="output folder (default: <root>/summary)")
    parser.add_argument(
        "--heatmap_normalise", choices=["none", "minmax"], default="none",
        help="heatmap colours: the weights themselves (none) or each row min-max normalised (minmax)",
    )
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                        help="non-inferiority margin in EER points (default 0.5)")
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates (default 1000)")
    parser.add_argument("--manifest", action="append", metavar="DATASET/SET=CSV",
                        help="resample this test set's speakers (a manifest with ID and speaker columns); "
                             "repeatable")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    out = args.out or os.path.join(args.root, "summary")
    try:
        speakers = manifest_speakers(args.manifest)
        written = aggregate(args.root, out, args.heatmap_normalise, args.margin, args.replicates, speakers)
    except (OSError, ValueError) as err:
        sys.exit(f"error: {err}")
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
