"""Figures a reviewer would accept: weights in their own units, normalisation
stated, integer depth ticks, nothing clipped; the paper's numbers beside ours."""

import csv
import json
import os
import re

import numpy as np
import pytest

from lobes.experiments.aggregate import aggregate, heatmap_rows
from lobes.experiments.paper import EVAL_SETS, paper_eer, paper_results, render_readme
from lobes.experiments.plots import eer_vs_depth_figure, heatmap_figure, layer_weights_figure, plt

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LONG_TITLE = "wav2vec2-xls-r-300m + aasist, N=24: mean learned layer weights over three seeds"


def assert_nothing_clipped(fig):
    """Everything drawn (titles, labels, tick labels, colour bar, legend)
    lies inside the figure."""
    fig.canvas.draw()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
    width, height = fig.get_size_inches()
    tolerance = 0.02
    assert drawn.x0 >= -tolerance and drawn.y0 >= -tolerance, drawn
    assert drawn.x1 <= width + tolerance and drawn.y1 <= height + tolerance, (drawn, width, height)
    plt.close(fig)


def test_the_clipping_check_can_fail():
    fig, ax = plt.subplots(figsize=(2, 2))  # no constrained layout, no wrapping
    ax.set_title(LONG_TITLE)
    with pytest.raises(AssertionError):
        assert_nothing_clipped(fig)


def near_uniform(n, seed=0):
    weights = 1 / n + np.random.default_rng(seed).uniform(-0.001, 0.001, n)
    return weights / weights.sum()


def test_heatmap_shows_weights_in_weight_units_by_default():
    rows = {"LA19": near_uniform(4), "HABLA": near_uniform(4, 1)}
    fig = heatmap_figure(rows, "N=4")
    ax, colorbar_ax = fig.axes
    low, high = ax.images[0].get_clim()
    assert low == 0.0 and high == pytest.approx(max(r.max() for r in rows.values()))
    assert colorbar_ax.get_ylabel() == "softmax layer weight"
    # Near-uniform weights get near-equal colours: within 1 % of the range.
    values = ax.images[0].get_array()
    assert (values.max() - values.min()) / high < 0.01
    # Few cells: each value is written in its cell.
    cell_texts = sorted(t.get_text() for t in ax.texts)
    assert cell_texts == sorted(f"{v:.3f}" for r in rows.values() for v in r)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["LA19", "HABLA"]
    assert_nothing_clipped(fig)


def test_minmax_normalisation_is_an_option_the_colour_bar_states():
    records = [
        {"dataset": d, "ssl": "s", "head": "ffn", "n_layers": 4, "layer_weights": list(near_uniform(4, i))}
        for i, d in enumerate(("A", "B"))
    ]
    rows = heatmap_rows(records, "s", "ffn", 4, normalise="minmax")
    assert list(rows) == ["A", "B", "AVERAGE"]
    for name in ("A", "B"):
        assert rows[name].min() == 0.0 and rows[name].max() == 1.0
    np.testing.assert_allclose(rows["AVERAGE"], (rows["A"] + rows["B"]) / 2)
    fig = heatmap_figure(rows, "N=4", normalise="minmax")
    assert fig.axes[0].images[0].get_clim() == (0.0, 1.0)
    assert "min-max normalised per row" in fig.axes[1].get_ylabel()
    plt.close(fig)
    with pytest.raises(ValueError, match="must lie in"):
        heatmap_figure({"A": [0.2, 1.5]}, "x", normalise="minmax")
    with pytest.raises(ValueError, match="one of"):
        heatmap_figure({"A": [0.2, 0.8]}, "x", normalise="row")


def test_many_cells_are_not_annotated():
    fig = heatmap_figure({f"D{i}": near_uniform(24, i) for i in range(6)}, LONG_TITLE)
    assert len(fig.axes[0].texts) == 0
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [str(i) for i in range(1, 25)]
    assert_nothing_clipped(fig)


@pytest.mark.parametrize("make", [
    lambda: heatmap_figure({"LA19": near_uniform(2)}, LONG_TITLE),
    lambda: layer_weights_figure(near_uniform(2), LONG_TITLE),
    lambda: eer_vs_depth_figure({"s ffn": [(1, 3.0, 0.5), (2, 2.0, 0.1)]}, LONG_TITLE),
])
def test_long_titles_are_wrapped_whole_and_nothing_is_clipped(make):
    fig = make()
    title = fig.axes[0].get_title()
    assert "\n" in title and title.replace("\n", " ") == LONG_TITLE
    assert_nothing_clipped(fig)


def test_depth_axis_has_integer_ticks_and_the_paper_curve():
    fig = eer_vs_depth_figure(
        {"wavlm-base-plus ffn": [(2, 1.0, 0.1), (4, 0.8, 0.2), (6, 0.7, 0.1)], "x ffn": [(3, 2.0, 0.0)]},
        "ASVspoof2019 eval",
        reference={"wavlm-base-plus ffn": [(2, 0.98), (4, 0.6), (6, 0.44)]},
    )
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [2, 3, 4, 6]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["wavlm-base-plus ffn", "x ffn", "wavlm-base-plus ffn (paper)"]
    paper_line = next(line for line in ax.get_lines() if line.get_label().endswith("(paper)"))
    assert paper_line.get_linestyle() == "--"
    assert list(paper_line.get_ydata()) == [0.98, 0.6, 0.44]
    assert_nothing_clipped(fig)


def write_run(root, dataset, source, head, n_layers, seed, eers, weights):
    folder = root / dataset / os.path.basename(source) / head / f"N{n_layers}" / f"seed{seed}"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({
        "config": {"ssl_source": source, "n_layers": n_layers, "dataset": dataset,
                   "head_type": head, "seed": seed},
        "layer_weights": list(weights),
        "test_sets": {name: {"eer": eer} for name, eer in eers.items()},
    }))


def test_aggregate_puts_the_paper_mean_and_difference_beside_each_matching_cell(tmp_path):
    for seed, eer in ((1, 0.5), (2, 0.7)):
        write_run(tmp_path / "sweep", "ASVspoof2019", "facebook/wav2vec2-xls-r-300m", "ffn", 8, seed,
                  {"eval": eer, "itw": 9.0}, near_uniform(8, seed))
    write_run(tmp_path / "sweep", "ASVspoof2019", "/models/tiny-wavlm", "ffn", 2, 1,
              {"eval": 3.0}, near_uniform(2))
    written = aggregate(str(tmp_path / "sweep"), str(tmp_path / "out"))
    table = (tmp_path / "out" / "eer_table.md").read_text().splitlines()
    row = next(line for line in table if line.startswith("| tiny-wavlm"))
    assert "paper" not in row  # the paper never ran a tiny model
    row = next(line for line in table if line.startswith("| wav2vec2-xls-r-300m"))
    # LA19 eval: paper 0.15 for XLS-R + FFN, N=8; ours 0.60 -> +0.45. No paper ITW number.
    assert "0.60 ± 0.14 (2); paper 0.15 (Δ +0.45)" in row
    assert "| 9.00 ± 0.00 (2) |" in row
    rows = {r["ssl"]: r for r in csv.DictReader(open(tmp_path / "out" / "eer_table.csv"))}
    xlsr = rows["wav2vec2-xls-r-300m"]
    assert xlsr["ASVspoof2019/eval/paper_eer_mean"] == "0.15"
    assert float(xlsr["ASVspoof2019/eval/diff_vs_paper"]) == pytest.approx(0.45)
    assert xlsr["ASVspoof2019/itw/paper_eer_mean"] == ""
    assert sum(p.endswith(".png") for p in written) == 4  # 2 heatmaps, 2 depth plots


def test_paper_results_are_package_data_with_their_citation():
    data = paper_results()
    assert "arXiv:2502.03559" in data["citation"] and "NAACL 2025" in data["citation"]
    assert "LA19" in data["included"]
    # 3 SSL families x 2 heads x (4 small + 6 large depths) x 10 evaluation sets.
    assert len(data["rows"]) == 3 * 2 * (4 + 6) * 10
    # Spot checks against REFERENCE.md's best configurations.
    assert paper_eer("facebook/wav2vec2-base", "aasist", 4, "PartialSpoof", "eval") == 1.82
    assert paper_eer("facebook/hubert-base-ls960", "ffn", 12, "SceneFake", "seen") == 2.44
    assert paper_eer("microsoft/wavlm-large", "aasist", 10, "CtrSVDD", "eval") == 10.52
    assert set(EVAL_SETS.values()) <= {row[4] for row in data["rows"]}
    setup = open(os.path.join(REPO, "setup.py"), encoding="utf-8").read()
    assert re.search(r'package_data=\{"lobes\.experiments": \[[^]]*"paper_results\.json"', setup)


def test_readme_paper_tables_are_rendered_from_the_bundled_data():
    readmes = [os.path.join(REPO, "recipes", d, "README.md") for d in sorted(os.listdir(os.path.join(REPO, "recipes")))]
    marked = 0
    for path in readmes:
        if not os.path.isfile(path):
            continue
        text = open(path, encoding="utf-8").read()
        marked += text.count("<!-- paper-table:")
        assert render_readme(text) == text, f"{path} is stale: run python -m lobes.paper --readmes {path}"
    assert marked >= 5
