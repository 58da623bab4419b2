"""Figures: learned layer weights (bars, heatmaps) and EER against depth.

Each ``*_figure`` function returns a matplotlib ``Figure`` (so tests can read
its ticks, titles and colour range) and ``save_figure`` writes and closes it.
Every figure uses constrained layout and wraps long titles, so no title or
label is clipped; depth and layer axes have integer ticks only.
"""

import textwrap

import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

# Up to this many cells a heatmap prints each value in its cell.
MAX_ANNOTATED_CELLS = 120
HEATMAP_NORMALISATIONS = {
    "none": "softmax layer weight",
    "minmax": "layer weight, min-max normalised per row\n(0 = row's lowest, 1 = row's highest)",
}


def wrapped(title, fig_width_inches):
    """``title`` broken into lines that fit a figure this wide (9
    characters per inch: medium font size with a margin).

    Example
    -------
    >>> print(wrapped("wavlm-base-plus + aasist, N=12: learned layer weights", 3))
    wavlm-base-plus + aasist,
    N=12: learned layer weights
    """
    width = max(20, int(fig_width_inches * 9))
    return "\n".join(textwrap.wrap(title, width)) or title


def save_figure(fig, path, dpi=120):
    """Writes ``fig`` to ``path`` and closes it."""
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def layer_weights_figure(weights, title="Layer weights"):
    """Bar plot of one run's softmax layer weights (layer 1 first), each
    value printed, with the uniform weight 1/N as a dashed line.

    Example
    -------
    >>> fig = layer_weights_figure([0.2, 0.5, 0.3])
    >>> [int(t) for t in fig.axes[0].get_xticks()]
    [1, 2, 3]
    """
    weights = [float(w) for w in weights]
    width = max(4.8, 0.45 * len(weights) + 3.2)  # room for the legend beside the axes
    fig, ax = plt.subplots(figsize=(width, 3.0), layout="constrained")
    layers = list(range(1, len(weights) + 1))
    bars = ax.bar(layers, weights, color="tab:blue")
    # Learned weights often stay close to uniform: print them too.
    ax.bar_label(bars, labels=[f"{w:.3f}" for w in weights], fontsize="x-small")
    ax.axhline(1.0 / len(weights), color="grey", linestyle="--", linewidth=1, label="uniform (1/N)")
    ax.set_xlabel("transformer layer")
    ax.set_ylabel("softmax weight")
    ax.set_xticks(layers)
    ax.set_title(wrapped(title, width), fontsize="medium")
    ax.set_ylim(0, max(weights) * 1.25)
    # Outside the axes, so that it never hides a bar (constrained layout makes room).
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return fig


def plot_layer_weights(weights, path, title="Layer weights"):
    """``layer_weights_figure`` saved to ``path``.

    Example
    -------
    >>> path = getfixture("tmp_path") / "w.png"
    >>> plot_layer_weights([0.2, 0.5, 0.3], path)
    >>> path.stat().st_size > 0
    True
    """
    save_figure(layer_weights_figure(weights, title), path)


def min_max(vector):
    """Scales to [0, 1]; a constant vector becomes all zeros.

    Example
    -------
    >>> min_max([0.249, 0.251, 0.250]).tolist()
    [0.0, 1.0, 0.5]
    """
    vector = np.asarray(vector, dtype=float)
    span = vector.max() - vector.min()
    return (vector - vector.min()) / span if span > 0 else np.zeros_like(vector)


def heatmap_figure(rows, title, normalise="none"):
    """Heatmap of layer weights, one row per name (e.g. training dataset).

    ``normalise`` says what the rows hold and the colour bar states it:
    ``"none"`` (default), the weights themselves, drawn on a scale from 0 to
    the largest weight so that near-uniform weights look near-uniform;
    ``"minmax"``, rows already min-max normalised (``lobes.experiments.aggregate.heatmap_rows``
    does it, as the paper's figures do), drawn from 0 to 1. Values are
    written in the cells when there are at most ``MAX_ANNOTATED_CELLS``.

    Example
    -------
    >>> fig = heatmap_figure({"LA19": [0.249, 0.251, 0.250, 0.250]}, "N=4")
    >>> fig.axes[0].images[0].get_clim()
    (0.0, 0.251)
    >>> fig.axes[1].get_ylabel()
    'softmax layer weight'
    """
    if normalise not in HEATMAP_NORMALISATIONS:
        raise ValueError(
            f"heatmap normalisation must be one of {list(HEATMAP_NORMALISATIONS)}, got {normalise!r}"
        )
    names = list(rows)
    matrix = np.stack([np.asarray(rows[n], dtype=float) for n in names])
    if normalise == "minmax":
        if matrix.min() < 0 or matrix.max() > 1:
            raise ValueError("minmax heatmap rows must lie in [0, 1]: normalise them first (min_max)")
        vmax = 1.0
    else:
        vmax = float(matrix.max()) if matrix.max() > 0 else 1.0
    n_layers = matrix.shape[1]
    width = max(5.0, 2.8 + 0.6 * n_layers)
    fig, ax = plt.subplots(figsize=(width, 1.6 + 0.5 * len(names)), layout="constrained")
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(n_layers), [str(i + 1) for i in range(n_layers)])
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("transformer layer")
    ax.set_title(wrapped(title, width), fontsize="medium")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.05)
    colorbar.set_label(HEATMAP_NORMALISATIONS[normalise], fontsize="small")
    if matrix.size <= MAX_ANNOTATED_CELLS:
        digits = 2 if normalise == "minmax" else 3
        for (i, j), value in np.ndenumerate(matrix):
            # Dark text on the bright end of viridis, light text elsewhere.
            colour = "black" if value > 0.6 * vmax else "white"
            ax.text(j, i, f"{value:.{digits}f}", ha="center", va="center", fontsize="x-small", color=colour)
    return fig


def eer_vs_depth_figure(curves, title, reference=None, bands=None):
    """EER against N, one line (mean with the seeds' standard deviation as
    error bars) per curve name; ``reference`` curves (the paper's) are drawn
    dashed, without error bars. Depth ticks are integers.

    Arguments
    ---------
    curves : dict
        Name -> list of ``(n_layers, mean, std)``.
    title : str
    reference : dict, optional
        Name -> list of ``(n_layers, eer)``.
    bands : dict, optional
        Name -> list of ``(n_layers, low, high)``: a shaded 95 % interval
        around the curve of that name.

    Example
    -------
    >>> fig = eer_vs_depth_figure({"wavlm ffn": [(1, 9.0, 1.0), (2, 7.0, 0.5)]}, "LA19 eval")
    >>> [float(t) for t in fig.axes[0].get_xticks()]
    [1.0, 2.0]
    """
    n_entries = len(curves) + len(reference or {})
    # The legend goes below the axes (long SSL names would squeeze them
    # sideways): two entries a row, each row about 0.25 inch.
    fig, ax = plt.subplots(figsize=(5.5, 3.4 + 0.25 * ((n_entries + 1) // 2)), layout="constrained")
    depths = set()
    colours, handles = {}, []
    for name, points in curves.items():
        depth, mean, std = zip(*sorted(points))
        depths.update(depth)
        line = ax.errorbar(depth, mean, yerr=std, marker="o", capsize=3, label=name)
        colours[name] = line.lines[0].get_color()
        handles.append(line)
        if (bands or {}).get(name):
            band_depth, low, high = zip(*sorted(bands[name]))
            ax.fill_between(band_depth, low, high, color=colours[name], alpha=0.2, linewidth=0)
    if any((bands or {}).get(name) for name in curves):
        handles.append(Patch(color="grey", alpha=0.3, label="95 % interval of the seed mean (shaded)"))
    for name, points in (reference or {}).items():
        depth, eer = zip(*sorted(points))
        depths.update(depth)
        (line,) = ax.plot(depth, eer, linestyle="--", marker="x", color=colours.get(name), label=f"{name} (paper)")
        handles.append(line)
    ax.set_xticks(sorted(depths))
    ax.set_xlabel("N (transformer layers kept)")
    ax.set_ylabel("EER (%)")
    ax.set_title(wrapped(title, 5.5), fontsize="medium")
    # Ours, then the paper's, in the order given (column by column).
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize="small")
    return fig
