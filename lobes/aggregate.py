"""Tables and figures from the ``results.json`` files of a sweep.

    python -m lobes.aggregate results/sweep --out results/sweep/summary

Writes, from every ``results.json`` below the folder (partial sweeps too):

- ``eer_table.md`` and ``eer_table.csv``: rows SSL x head x N, one column per
  dataset and test set, mean and standard deviation of the EER (%) over
  seeds; cells without runs stay empty ("-"), never 0;
- ``heatmap_<ssl>_<head>_N<n>.png``: min-max normalised layer weights, one
  row per training dataset plus an AVERAGE row (as the paper's figures);
- ``eer_vs_depth_<dataset>_<test set>.png``: EER against N per SSL and head.
"""

import argparse
import csv
import json
import os
import sys
from collections import defaultdict

import numpy as np

from lobes.plots import plt
from lobes.scores import atomic_write_text
from lobes.sweep import ssl_name

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
        if "results.json" not in files:
            continue
        path = os.path.join(folder, "results.json")
        with open(path, encoding="utf-8") as fin:
            results = json.load(fin)
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


def format_markdown(rows, columns, cells):
    """The EER table as Markdown: ``mean ± std (n)`` or ``-``."""
    header = ["SSL", "head", "N"] + [f"{d} {t}" for d, t in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells_text = []
        for column in columns:
            values = cells.get((row, column))
            if not values:
                cells_text.append(MISSING)
                continue
            mean, std = mean_std(values)
            cells_text.append(f"{mean:.2f} ± {std:.2f} ({len(values)})")
        lines.append("| " + " | ".join([row[0], row[1], str(row[2])] + cells_text) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path, rows, columns, cells):
    """The EER table as CSV: mean, std and number of seeds per column."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fout:
        writer = csv.writer(fout)
        header = ["ssl", "head", "n_layers"]
        for dataset, test_set in columns:
            header += [f"{dataset}/{test_set}/{k}" for k in ("eer_mean", "eer_std", "n_seeds")]
        writer.writerow(header)
        for row in rows:
            line = list(row)
            for column in columns:
                values = cells.get((row, column))
                if values:
                    mean, std = mean_std(values)
                    line += [f"{mean:.4f}", f"{std:.4f}", len(values)]
                else:
                    line += ["", "", 0]
            writer.writerow(line)


def min_max(vector):
    """Scales to [0, 1]; a constant vector becomes all zeros."""
    vector = np.asarray(vector, dtype=float)
    span = vector.max() - vector.min()
    return (vector - vector.min()) / span if span > 0 else np.zeros_like(vector)


def heatmap_rows(records, ssl, head, n_layers):
    """Dataset -> min-max normalised mean layer weights, plus ``AVERAGE``."""
    by_dataset = defaultdict(list)
    for record in records:
        if (record["ssl"], record["head"], record["n_layers"]) == (ssl, head, n_layers):
            by_dataset[record["dataset"]].append(record["layer_weights"])
    rows = {d: min_max(np.mean(w, axis=0)) for d, w in sorted(by_dataset.items())}
    if rows:
        rows["AVERAGE"] = np.mean(list(rows.values()), axis=0)
    return rows


def plot_heatmap(rows, path, title):
    names = list(rows)
    matrix = np.stack([rows[n] for n in names])
    fig, ax = plt.subplots(figsize=(max(5.0, 2.0 + 0.55 * matrix.shape[1]), 1.2 + 0.45 * len(names)))
    image = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), [str(i + 1) for i in range(matrix.shape[1])])
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("transformer layer")
    ax.set_title(title, fontsize="medium")
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_eer_vs_depth(rows, cells, column, path):
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for ssl, head in sorted({(r[0], r[1]) for r in rows}):
        points = [
            (row[2], *mean_std(cells[(row, column)]))
            for row in rows
            if row[:2] == (ssl, head) and cells.get((row, column))
        ]
        if points:
            depth, mean, std = zip(*sorted(points))
            ax.errorbar(depth, mean, yerr=std, marker="o", capsize=3, label=f"{ssl} {head}")
    ax.set_xlabel("N (transformer layers kept)")
    ax.set_ylabel("EER (%)")
    ax.set_title(f"{column[0]} {column[1]}", fontsize="medium")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def aggregate(root, out):
    """Writes all tables and figures; returns the list of written paths."""
    records = load_results(root)
    if not records:
        raise FileNotFoundError(f"no results.json below {root}")
    os.makedirs(out, exist_ok=True)
    rows, columns, cells = eer_table(records)
    written = [os.path.join(out, "eer_table.md"), os.path.join(out, "eer_table.csv")]
    atomic_write_text(written[0], format_markdown(rows, columns, cells))
    write_csv(written[1], rows, columns, cells)
    for ssl, head, n_layers in sorted({(r["ssl"], r["head"], r["n_layers"]) for r in records}):
        hm_rows = heatmap_rows(records, ssl, head, n_layers)
        path = os.path.join(out, f"heatmap_{ssl}_{head}_N{n_layers}.png")
        plot_heatmap(hm_rows, path, f"{ssl} + {head}, N={n_layers}: layer weights (min-max)")
        written.append(path)
    for column in columns:
        path = os.path.join(out, f"eer_vs_depth_{column[0]}_{column[1]}.png")
        plot_eer_vs_depth(rows, cells, column, path)
        written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description="Tables and figures from a sweep's results.")
    parser.add_argument("root", help="folder searched for results.json files")
    parser.add_argument("--out", help="output folder (default: <root>/summary)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    out = args.out or os.path.join(args.root, "summary")
    try:
        written = aggregate(args.root, out)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
