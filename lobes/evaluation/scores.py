"""Score files: one ``UTT_ID ATTACK KEY SCORE`` line a trial, higher = bona fide.

Files are written to a temporary file and renamed into place, so a crash
never leaves a half-written file and a rerun overwrites instead of appending.
"""

import math
from dataclasses import dataclass

from lobes.utils.files import atomic_write_text

KEYS = ("bonafide", "spoof")


@dataclass(frozen=True)
class ScoreRecord:
    """One scored trial."""

    utt_id: str
    attack: str
    key: str
    score: float


def write_scores(path, records, scores=None):
    """Writes score records, one line each; refuses duplicate trial ids.

    ``scores`` (one per record, same order) replaces the records' own
    scores, e.g. with calibrated ones, without building new records.

    Example
    -------
    >>> path = getfixture("tmp_path") / "eval.txt"
    >>> write_scores(path, [ScoreRecord("LA_E_1", "-", "bonafide", 1.5)])
    >>> read_scores(path)
    [ScoreRecord(utt_id='LA_E_1', attack='-', key='bonafide', score=1.5)]
    """
    if scores is None:
        scores = [record.score for record in records]
    if len(scores) != len(records):
        raise ValueError(f"{len(scores)} scores for {len(records)} records while writing {path}")
    seen = set()
    lines = []
    for record, score in zip(records, scores):
        if record.utt_id in seen:
            raise ValueError(f"trial {record.utt_id!r} scored twice while writing {path}")
        seen.add(record.utt_id)
        lines.append(f"{record.utt_id} {record.attack} {record.key} {score:.6f}\n")
    atomic_write_text(str(path), "".join(lines))


def read_scores(path, both_classes=False):
    """Reads a score file written by ``write_scores``; errors name file and
    line: a malformed line, a key other than bonafide/spoof, a score that is
    not a finite number, a trial id seen before. ``both_classes`` also
    refuses a file without bona fide or without spoof trials.

    Example
    -------
    >>> path = getfixture("tmp_path") / "bad.txt"
    >>> _ = path.write_text("a - bonafide 1.0\\nb A01 spoof nan\\n")
    >>> read_scores(path)
    Traceback (most recent call last):
    ...
    ValueError: ...bad.txt:2: score 'nan' is not a finite number
    """
    records, seen = [], {}
    with open(path, encoding="utf-8") as fin:
        for line_no, line in enumerate(fin, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 4:
                raise ValueError(
                    f"{path}:{line_no}: expected 'UTT_ID ATTACK KEY SCORE', got {line.strip()!r}"
                )
            try:
                score = float(fields[3])
            except ValueError:
                raise ValueError(f"{path}:{line_no}: score {fields[3]!r} is not a number") from None
            if not math.isfinite(score):
                raise ValueError(f"{path}:{line_no}: score {fields[3]!r} is not a finite number")
            if fields[2] not in KEYS:
                raise ValueError(f"{path}:{line_no}: key {fields[2]!r} is neither 'bonafide' nor 'spoof'")
            if fields[0] in seen:
                raise ValueError(
                    f"{path}:{line_no}: trial {fields[0]!r} already scored on line {seen[fields[0]]}"
                )
            seen[fields[0]] = line_no
            records.append(ScoreRecord(fields[0], fields[1], fields[2], score))
    if both_classes:
        missing = [key for key in KEYS if not any(r.key == key for r in records)]
        if missing:
            raise ValueError(f"{path}: no {' and no '.join(missing)} trials ({len(records)} trials in all)")
    return records
