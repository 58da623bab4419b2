"""Small file helpers every layer uses: atomic writes and line-numbered reading.

They sit at the bottom of the package so that data preparation, scoring,
training and the command-line tools share one implementation.
"""

import os
import tempfile


def atomic_write_text(path, text):
    """Writes ``text`` to ``path`` through a temporary file and a rename, so a
    crash never leaves a half-written file and a rerun overwrites.

    Example
    -------
    >>> path = getfixture("tmp_path") / "a" / "b.txt"
    >>> atomic_write_text(path, "x\\n")
    >>> path.read_text()
    'x\\n'
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fout:
            fout.write(text)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def numbered_lines(path, what="file"):
    """Yields ``(line_no, fields, line)`` for every non-blank line of a text
    file (``fields`` split on whitespace, ``line`` without its newline), so
    that readers can name ``path:line_no`` in their errors.

    Example
    -------
    >>> path = getfixture("tmp_path") / "list.txt"
    >>> _ = path.write_text("a 1\\n\\n b 2 \\n")
    >>> list(numbered_lines(path))
    [(1, ['a', '1'], 'a 1'), (3, ['b', '2'], ' b 2 ')]
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, encoding="utf-8") as fin:
        for line_no, line in enumerate(fin, 1):
            line = line.rstrip("\r\n")
            fields = line.split()
            if fields:
                yield line_no, fields, line
