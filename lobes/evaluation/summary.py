"""The short table a recipe prints for each scored set."""

from lobes.evaluation.bootstrap import interval_summary


def print_summary(name, metrics, layer_weights):
    """Prints a compact table of one test set's metrics: every float, each
    group of numbers (per attack, calibration, ...) on one line, the 95 %
    intervals when there are any, and the layer weights.

    Example
    -------
    >>> print_summary("eval", {"n_trials": 3, "n_bonafide": 1, "n_spoof": 2, "eer": 12.5,
    ...                        "eer_by_attack": {"A07": 10.0}}, [0.25, 0.75])
    == eval: 3 trials (1 bona fide, 2 spoof) ==
      eer                        12.500
      eer_by_attack            A07:10.00
      layer weights            0.250 0.750
    """
    lines = [f"== {name}: {metrics['n_trials']} trials "
             f"({metrics['n_bonafide']} bona fide, {metrics['n_spoof']} spoof) =="]
    for key, value in metrics.items():
        if isinstance(value, float) and key != "loss":
            lines.append(f"  {key:<24} {value:8.3f}")
    numeric_groups = (
        k for k, v in metrics.items()
        if k != "intervals" and isinstance(v, dict) and any(isinstance(x, (int, float)) for x in v.values())
    )
    for group_key in numeric_groups:
        cells = "  ".join(
            f"{g}:{v:.2f}" for g, v in metrics[group_key].items() if isinstance(v, (int, float))
        )
        lines.append(f"  {group_key:<24} {cells}")
    if "intervals" in metrics:
        lines.append(f"  95% intervals ({metrics['intervals']['unit']}s resampled) "
                     + interval_summary(metrics["intervals"]["pooled"]))
    lines.append("  layer weights            " + " ".join(f"{w:.3f}" for w in layer_weights))
    print("\n".join(lines), flush=True)
