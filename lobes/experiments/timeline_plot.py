"""Picture of a timeline: window score and posterior against time, spoofed regions shaded.

    python -m lobes.timeline_plot timeline.csv --rttm regions.rttm \
        --out timeline.png [--file NAME] [--truth 6.0 10.0]

Reads what ``python -m lobes.detect ... --timeline timeline.csv --rttm
regions.rttm`` wrote. Each window is drawn at its centre. ``--truth`` outlines
a known spoofed span (for synthetic tests and demos).
"""

import argparse
import sys

import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt  # noqa: E402

from lobes.evaluation.rttm import file_id, read_rttm  # noqa: E402
from lobes.evaluation.timeline import read_timeline  # noqa: E402


def timeline_figure(rows, regions, truth=None, title=None):
    """A ``Figure``: score (left axis) and posterior of bona fide (right axis)
    of each window at its centre; ``regions`` shaded; ``truth`` outlined."""
    centres = [(r["start"] + r["end"]) / 2 for r in rows]
    fig, ax = plt.subplots(figsize=(9, 3.4), dpi=110)
    for index, (start, end) in enumerate(regions):
        ax.axvspan(start, end, color="tab:red", alpha=0.18, lw=0,
                   label="spoofed region (RTTM)" if index == 0 else None)
    if truth:
        ax.axvspan(*truth, fill=False, hatch="//", edgecolor="tab:red", lw=0.8,
                   label="spliced spoof (truth)")
    ax.plot(centres, [r["score"] for r in rows], color="tab:blue", marker=".", lw=1.2,
            label="raw score (bona fide logit)")
    ax.set_xlabel("time (s), window centre")
    ax.set_ylabel("raw score", color="tab:blue")
    handles, labels = ax.get_legend_handles_labels()
    if all(r["posterior"] is not None for r in rows):
        right = ax.twinx()
        right.plot(centres, [r["posterior"] for r in rows], color="tab:green", lw=1.2,
                   label="posterior of bona fide")
        right.axhline(0.5, color="tab:green", ls=":", lw=0.8)
        right.set_ylim(-0.02, 1.02)
        right.set_ylabel("posterior of bona fide", color="tab:green")
        more = right.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.set_xlim(0, max(r["end"] for r in rows))
    ax.legend(handles, labels, loc="lower left", fontsize=7, framealpha=0.9)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def main(argv=None):
    """``python -m lobes.timeline_plot``: draws a timeline file as an image."""
    parser = argparse.ArgumentParser(prog="python -m lobes.timeline_plot",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("timeline", help="timeline (.csv or .jsonl) written by lobes.detect --timeline")
    parser.add_argument("--rttm", help="spoofed regions written by lobes.detect --rttm")
    parser.add_argument("--file", help="which file of the timeline (default: the first)")
    parser.add_argument("--truth", nargs=2, type=float, metavar=("START", "END"))
    parser.add_argument("--title")
    parser.add_argument("--out", required=True, help="PNG to write")
    args = parser.parse_args(argv)
    rows = read_timeline(args.timeline)
    if not rows:
        raise SystemExit(f"error: {args.timeline} has no rows")
    name = args.file or rows[0]["file"]
    rows = [r for r in rows if r["file"] == name]
    if not rows:
        raise SystemExit(f"error: {args.timeline} has no rows for {name}")
    regions = read_rttm(args.rttm).get(file_id(name), []) if args.rttm else []
    timeline_figure(rows, regions, args.truth, args.title).savefig(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
