"""A timeline of window scores per file: raw score, LLR and posterior.

One row per scored window: ``file, start, end, score, llr, posterior``.
``score`` is the raw bona fide logit of the window (what ``lobes.detect``
aggregates into the per-file score); ``llr`` is the calibrated natural-log
likelihood ratio (bona fide vs spoof) and ``posterior`` the probability of
bona fide at ``prior``, both empty when the model folder has no
``calibration.json`` (written by the recipe when it scores its dev set).

``calibrate`` is the one place that turns raw window scores into LLRs and
posteriors here, so that it can later be pointed at the detector's own
calibrated outputs.
"""

import csv
import io
import json
import os

import numpy as np

from lobes.evaluation.calibration import Calibration, posterior  # noqa: F401  (Calibration: doctests)
from lobes.utils.files import atomic_write_text

TIMELINE_FIELDS = ("file", "start", "end", "score", "llr", "posterior")
TIMELINE_FORMATS = {".csv": "csv", ".jsonl": "jsonl"}


def calibrate(scores, calibration, prior=0.5):
    """``(llr, posterior)`` arrays of raw ``scores``: LLR = a s + b, posterior
    of bona fide at ``prior`` = sigmoid(LLR + logit prior). Both None
    without a calibration.

    Example
    -------
    >>> llr, posterior = calibrate([0.0, 2.0], Calibration(a=1.0, b=-1.0, prior=0.5))
    >>> llr.tolist(), posterior.round(3).tolist()
    ([-1.0, 1.0], [0.269, 0.731])
    """
    if calibration is None:
        return None, None
    llr = calibration.apply(scores)  # posterior() refuses a prior outside (0, 1)
    return llr, posterior(llr, prior)


def window_rows(path, result, window_seconds, calibration=None, prior=0.5):
    """Timeline rows (dicts of ``TIMELINE_FIELDS``) of one ``DetectionResult``.

    A window ends ``window_seconds`` after its start, or at the end of the
    file when the file is shorter (it was tiled to the window length);
    ``window_seconds`` None: the file was scored whole, its row spans it.
    """
    scores = np.asarray(result.window_scores, dtype=np.float64)
    llr, posterior = calibrate(scores, calibration, prior)
    rows = []
    for index, (start, score) in enumerate(zip(result.window_starts, scores)):
        rows.append({
            "file": str(path),
            "start": float(start),
            "end": float(result.duration if window_seconds is None
                         else min(start + window_seconds, result.duration)),
            "score": float(score),
            "llr": None if llr is None else float(llr[index]),
            "posterior": None if posterior is None else float(posterior[index]),
        })
    return rows


def format_row(row, form):
    """One timeline row as a CSV line or a JSON line (newline included)."""
    if form == "jsonl":
        return json.dumps({key: _rounded(row[key]) for key in TIMELINE_FIELDS}) + "\n"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(
        "" if row[key] is None else _rounded(row[key]) for key in TIMELINE_FIELDS
    )
    return buffer.getvalue()


def _rounded(value):
    return round(value, 6) if isinstance(value, float) else value


def timeline_format(path):
    """``"csv"`` or ``"jsonl"`` from the output's extension; anything else is an error."""
    form = TIMELINE_FORMATS.get(os.path.splitext(str(path))[1].lower())
    if form is None:
        raise ValueError(
            f"timeline file {path}: use a .csv or .jsonl extension (CSV or JSON Lines)"
        )
    return form


def write_timeline(path, rows):
    """Writes timeline rows to ``path`` (CSV with a header, or JSON Lines), atomically.

    Example
    -------
    >>> path = getfixture("tmp_path") / "t.csv"
    >>> write_timeline(path, [{"file": "a.wav", "start": 0.0, "end": 4.0, "score": 1.5,
    ...                        "llr": None, "posterior": None}])
    >>> print(path.read_text(), end="")
    file,start,end,score,llr,posterior
    a.wav,0.0,4.0,1.5,,
    """
    form = timeline_format(path)
    header = ",".join(TIMELINE_FIELDS) + "\n" if form == "csv" else ""
    atomic_write_text(str(path), header + "".join(format_row(row, form) for row in rows))


def read_timeline(path):
    """Rows of a timeline file (CSV or JSON Lines, by extension) as dicts;
    numbers as floats, empty LLR/posterior as None. Errors name the line.

    Example
    -------
    >>> path = getfixture("tmp_path") / "t.jsonl"
    >>> row = {"file": "a.wav", "start": 0.0, "end": 4.0, "score": 1.5, "llr": None, "posterior": None}
    >>> write_timeline(path, [row])
    >>> read_timeline(path) == [row]
    True
    """
    form = timeline_format(path)
    rows = []
    with open(path, newline="", encoding="utf-8") as fin:
        lines = csv.DictReader(fin) if form == "csv" else (json.loads(line) for line in fin if line.strip())
        for line_no, row in enumerate(lines, 2 if form == "csv" else 1):
            try:
                rows.append({key: _field(key, row[key]) for key in TIMELINE_FIELDS})
            except (KeyError, ValueError, TypeError):
                raise ValueError(f"{path}:{line_no}: not a timeline row "
                                 f"({', '.join(TIMELINE_FIELDS)}): {row}") from None
    return rows


def _field(key, value):
    if key == "file":
        return str(value)
    if value is None or value == "":
        if key in ("llr", "posterior"):
            return None
        raise ValueError(key)
    return float(value)
