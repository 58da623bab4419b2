"""Spoofed regions as RTTM, the file format of diarisation tools.

One line per region::

    SPEAKER <file-id> 1 <start> <duration> <NA> <NA> spoof <NA> <NA>

(the convention of WeDefense's localisation output). The file id is the
audio file's name without its extension; two scored files with the same
name would be indistinguishable, so that is refused.
"""

import math
import os

from lobes.utils.files import atomic_write_text

SPOOF_LABEL = "spoof"


def file_id(path):
    """RTTM file id of an audio path: its name without the extension.

    Example
    -------
    >>> file_id("calls/2024/call 7.flac")
    Traceback (most recent call last):
    ...
    ValueError: calls/2024/call 7.flac: an RTTM file id cannot hold whitespace
    >>> file_id("calls/call7.flac")
    'call7'
    """
    name = os.path.splitext(os.path.basename(str(path)))[0]
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"{path}: an RTTM file id cannot hold whitespace")
    return name


def format_rttm(regions_by_file):
    """RTTM text of ``{path: [(start, end), ...]}`` (files in the given order).

    Example
    -------
    >>> print(format_rttm({"a/x.wav": [(1.0, 2.5)], "b/y.wav": []}), end="")
    SPEAKER x 1 1.000 1.500 <NA> <NA> spoof <NA> <NA>
    """
    lines, owners = [], {}
    for path, regions in regions_by_file.items():
        name = file_id(path)
        if owners.setdefault(name, path) != path:
            raise ValueError(
                f"{owners[name]} and {path} share the RTTM file id {name!r}; "
                "rename one or score them into separate RTTM files"
            )
        for start, end in regions:
            lines.append(f"SPEAKER {name} 1 {start:.3f} {end - start:.3f} <NA> <NA> "
                         f"{SPOOF_LABEL} <NA> <NA>\n")
    return "".join(lines)


def write_rttm(path, regions_by_file):
    """Writes ``format_rttm(regions_by_file)`` to ``path``, atomically."""
    atomic_write_text(str(path), format_rttm(regions_by_file))


def read_rttm(path, label=SPOOF_LABEL):
    """Regions of ``label`` per file id: ``{file_id: [(start, end), ...]}``, sorted.

    Lines of other types or labels are ignored (an RTTM may hold speakers
    too). A malformed line, a negative start, a duration that is not
    positive, or two regions of one file that overlap is an error naming the
    file and line.

    Example
    -------
    >>> path = getfixture("tmp_path") / "r.rttm"
    >>> _ = path.write_text("SPEAKER x 1 3.0 1.0 <NA> <NA> spoof <NA> <NA>\\n"
    ...                     "SPEAKER x 1 0.5 1.0 <NA> <NA> spoof <NA> <NA>\\n")
    >>> read_rttm(path)
    {'x': [(0.5, 1.5), (3.0, 4.0)]}
    >>> _ = path.write_text("SPEAKER x 1 0.0 2.0 <NA> <NA> spoof <NA> <NA>\\n"
    ...                     "SPEAKER x 1 1.0 2.0 <NA> <NA> spoof <NA> <NA>\\n")
    >>> read_rttm(path)
    Traceback (most recent call last):
    ...
    ValueError: .../r.rttm:2: spoof region 1.0-3.0 of x overlaps 0.0-2.0 (line 1)
    """
    found = {}
    with open(path, encoding="utf-8") as fin:
        for line_no, line in enumerate(fin, 1):
            fields = line.split()
            if not fields or fields[0].startswith(";"):
                continue
            if len(fields) < 9:
                raise ValueError(f"{path}:{line_no}: expected an RTTM line of 10 fields, got {line.strip()!r}")
            if fields[0] != "SPEAKER" or fields[7] != label:
                continue
            try:
                start, duration = float(fields[3]), float(fields[4])
            except ValueError:
                raise ValueError(f"{path}:{line_no}: start and duration must be numbers, "
                                 f"got {fields[3]!r} and {fields[4]!r}") from None
            if not (math.isfinite(start) and math.isfinite(duration)) or start < 0 or duration <= 0:
                raise ValueError(f"{path}:{line_no}: start must be >= 0 and duration > 0, "
                                 f"got {start} and {duration}")
            found.setdefault(fields[1], []).append((start, start + duration, line_no))
    regions = {}
    for name, items in found.items():
        items.sort()
        for (s0, e0, l0), (s1, e1, l1) in zip(items, items[1:]):
            if s1 < e0 - 1e-9:
                later, earlier = ((s1, e1, l1), (s0, e0, l0)) if l1 > l0 else ((s0, e0, l0), (s1, e1, l1))
                raise ValueError(
                    f"{path}:{later[2]}: {label} region {later[0]}-{later[1]} of {name} "
                    f"overlaps {earlier[0]}-{earlier[1]} (line {earlier[2]})"
                )
        regions[name] = [(s, e) for s, e, _ in items]
    return regions
