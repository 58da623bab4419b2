"""Score files: one ``UTT_ID ATTACK KEY SCORE`` line a trial, higher = bona fide.

Files are written to a temporary file and renamed into place, so a crash
never leaves a half-written file and a rerun overwrites instead of appending.
"""

from dataclasses import dataclass

from lobes.utils.files import atomic_write_text


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


def read_scores(path):
    """Reads a score file written by ``write_scores``; errors name file and line."""
    records = []
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
            records.append(ScoreRecord(fields[0], fields[1], fields[2], score))
    return records
