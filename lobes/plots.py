"""Plots of learned layer weights."""

import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt  # noqa: E402


def plot_layer_weights(weights, path, title="Layer weights"):
    """Bar plot of normalised layer weights (layer 1 first), saved to ``path``.

    Example
    -------
    >>> path = getfixture("tmp_path") / "w.png"
    >>> plot_layer_weights([0.2, 0.5, 0.3], path)
    >>> path.stat().st_size > 0
    True
    """
    fig, ax = plt.subplots(figsize=(max(3.0, 0.45 * len(weights) + 1.5), 2.8))
    layers = list(range(1, len(weights) + 1))
    bars = ax.bar(layers, weights, color="tab:blue")
    # Learned weights often stay close to uniform: print them too.
    ax.bar_label(bars, labels=[f"{w:.3f}" for w in weights], fontsize="x-small")
    ax.axhline(1.0 / len(weights), color="grey", linestyle="--", linewidth=1, label="uniform")
    ax.set_xlabel("transformer layer")
    ax.set_ylabel("softmax weight")
    ax.set_xticks(layers)
    ax.set_title(title)
    ax.set_ylim(0, max(weights) * 1.25)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
