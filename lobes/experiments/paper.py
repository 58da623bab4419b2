"""The paper's published EERs, bundled as package data, and tables of them.

``lobes/experiments/paper_results.json`` holds the mean EERs (%, over three seeds)
of El Kheir et al., "Comprehensive Layer-wise Analysis of SSL Models for
Audio Deepfake Detection" (Findings of NAACL 2025, arXiv 2502.03559) for
every SSL model, head, depth N and evaluation set; the file says which
tables it includes. ``lobes.experiments.aggregate`` puts them beside a sweep's own
numbers; the recipe READMEs' paper tables are rendered from them:

    python -m lobes.paper --readmes recipes/*/README.md          # rewrite the tables
    python -m lobes.paper --readmes recipes/*/README.md --check  # exit 1 if stale

A README asks for a table with a pair of markers, e.g.
``<!-- paper-table: LA19 small -->`` and ``<!-- /paper-table -->``; what lies
between them is replaced.
"""

import argparse
import json
import re
import sys
from functools import lru_cache
from importlib import resources

from lobes.utils.files import atomic_write_text
from lobes.utils.run_folder import ssl_name

# Our (recipe dataset, test set) -> the paper's evaluation set. SceneFake's
# seen and unseen sets both map to the paper's single SceneFake column: the
# paper does not say which it reports (see the data file's notes).
EVAL_SETS = {
    ("ASVspoof2019", "eval"): "LA19",
    ("ASVspoof2019", "asv21_la"): "LA21",
    ("ASVspoof2019", "asv21_df"): "DF21",
    ("HABLA", "test"): "HABLA",
    ("PartialSpoof", "eval"): "Partial",
    ("SceneFake", "seen"): "SceneFake",
    ("SceneFake", "unseen"): "SceneFake",
    ("CtrSVDD", "eval"): "CtrSVDD",
}
SIZES = {"small": (2, 4, 6, 12), "large": (4, 6, 8, 10, 12, 24)}
MARKER = re.compile(
    r"(<!-- paper-table: (?P<eval_set>\S+) (?P<size>small|large) -->\n)(?P<body>.*?)(<!-- /paper-table -->)",
    re.DOTALL,
)


@lru_cache(maxsize=1)
def paper_results():
    """The bundled data: ``citation``, ``included``, ``notes`` and ``rows``
    (``[ssl_source, paper_name, head, n_layers, eval_set, eer_mean]``)."""
    text = resources.files("lobes.experiments").joinpath("paper_results.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _index():
    return {
        (ssl_name(source), head, n_layers, eval_set): eer
        for source, _, head, n_layers, eval_set, eer in paper_results()["rows"]
    }


def paper_eer(ssl, head, n_layers, dataset, test_set):
    """The paper's mean EER (%) for one of our cells, or None if it has none.

    ``ssl`` is a hub id, a path or its last part (as in sweep tables).

    Example
    -------
    >>> paper_eer("facebook/wav2vec2-xls-r-300m", "ffn", 8, "ASVspoof2019", "eval")
    0.15
    >>> paper_eer("wavlm-large", "aasist", 10, "CtrSVDD", "eval")
    10.52
    >>> paper_eer("tiny-wavlm", "ffn", 2, "ASVspoof2019", "eval") is None
    True
    """
    eval_set = EVAL_SETS.get((dataset, test_set))
    if eval_set is None:
        return None
    return _index().get((ssl_name(ssl), head.lower(), int(n_layers), eval_set))


def model_size(source):
    """``"large"`` for an SSL model the paper ran with 24 layers, else ``"small"``.

    Example
    -------
    >>> model_size("microsoft/wavlm-large"), model_size("microsoft/wavlm-base-plus")
    ('large', 'small')
    """
    return "large" if (ssl_name(source), 24) in _depths() else "small"


@lru_cache(maxsize=1)
def _depths():
    return {(ssl_name(row[0]), row[3]) for row in paper_results()["rows"]}


def paper_table(eval_set, size):
    """Markdown table of the paper's EERs on one evaluation set, one row per
    SSL model and head, one column per N; each row's best value in bold.

    Example
    -------
    >>> print(paper_table("LA19", "small").splitlines()[2])
    | Wav2Vec2-Small | `facebook/wav2vec2-base` | FFN | 0.63 | 0.58 | **0.48** | 0.68 |
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {list(SIZES)}, got {size!r}")
    depths = SIZES[size]
    cells, names = {}, {}
    for source, paper_name, head, n_layers, row_set, eer in paper_results()["rows"]:
        if row_set == eval_set and model_size(source) == size:
            cells[(source, head, n_layers)] = eer
            names[source] = paper_name
    if not cells:
        raise ValueError(f"the paper reports no {size} models on {eval_set!r}")
    header = ["paper name", "`--ssl_source`", "head"] + [f"N={n}" for n in depths]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|" + "---:|" * len(depths)]
    for source in names:  # file order: the paper's order
        for head in ("ffn", "aasist"):
            values = [cells.get((source, head, n)) for n in depths]
            best = min(v for v in values if v is not None)
            text = ["-" if v is None else (f"**{v:.2f}**" if v == best else f"{v:.2f}") for v in values]
            lines.append(f"| {names[source]} | `{source}` | {head.upper()} | " + " | ".join(text) + " |")
    return "\n".join(lines) + "\n"


def table_source_note():
    """The one-line provenance printed under rendered tables."""
    return (
        "Mean EER % over three seeds, from the paper's result tables bundled in "
        "`lobes/experiments/paper_results.json` (El Kheir et al., Findings of NAACL 2025, arXiv 2502.03559).\n"
    )


def render_readme(text):
    """``text`` with every marked paper table re-rendered."""

    def replace(match):
        body = paper_table(match["eval_set"], match["size"]) + "\n" + table_source_note()
        return match.group(1) + body + match.group(5)

    return MARKER.sub(replace, text)


def main(argv=None):
    """``python -m lobes.paper``: the paper's tables, or the recipe READMEs rendered from them."""
    parser = argparse.ArgumentParser(description="Render the paper's EER tables into READMEs.")
    parser.add_argument("--readmes", nargs="+", required=True, help="Markdown files with paper-table markers")
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    stale = []
    for path in args.readmes:
        with open(path, encoding="utf-8") as fin:
            text = fin.read()
        rendered = render_readme(text)
        if rendered != text:
            stale.append(path)
            if not args.check:
                atomic_write_text(path, rendered)
    for path in stale:
        print(("stale: " if args.check else "updated: ") + path)
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
