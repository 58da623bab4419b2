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
    # The mode a plain open() would give (mkstemp's is 0600), or the file's own.
    mode = os.stat(path).st_mode & 0o7777 if os.path.isfile(path) else 0o666 & ~_umask()
    _remove_dead_writers_files(folder, os.path.basename(path))
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=f".tmp-{os.getpid()}-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fout:
            fout.write(text)
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def _remove_dead_writers_files(folder, name):
    """Removes the temporary files of ``name`` that a writer killed before its
    rename left behind (``.tmp-<pid>-...<name>`` of a process that is gone);
    those of a live writer stay.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / ".tmp-999999999-x1scores.txt").write_text("half")
    >>> _ = (folder / f".tmp-{os.getpid()}-x2scores.txt").write_text("mine")
    >>> _remove_dead_writers_files(str(folder), "scores.txt")
    >>> sorted(p.name for p in folder.iterdir()) == [f".tmp-{os.getpid()}-x2scores.txt"]
    True
    """
    for entry in os.listdir(folder):
        if not (entry.startswith(".tmp-") and entry.endswith(name)):
            continue
        pid = entry[len(".tmp-"):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                os.remove(os.path.join(folder, entry))
            except FileNotFoundError:
                pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _umask():
    """The process's umask (read by setting it back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def checked_output_file(path, option="--out"):
    """The file to write for an output option, checked before any work: a
    folder, a device, pipe or socket, a parent that is a file or a folder
    that cannot be written is refused, naming the option; a symlink is
    written through (its target is returned).

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> checked_output_file(folder / "scores.txt") == str(folder / "scores.txt")
    True
    >>> checked_output_file(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --out ... is a folder: give the path of a file
    >>> checked_output_file("/dev/null")
    Traceback (most recent call last):
    ...
    ValueError: --out /dev/null is not a regular file (a device, pipe or socket): it would be replaced
    """
    path = os.path.realpath(str(path))  # a symlink: write its target
    if os.path.isdir(path):
        raise ValueError(f"{option} {path} is a folder: give the path of a file")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise ValueError(f"{option} {path} is not a regular file (a device, pipe or socket): it would be replaced")
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):  # folders to be created: the first existing one decides
        parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    if parent and not os.path.isdir(parent):
        raise ValueError(f"{option} {path}: {parent} is a file, not a folder")
    if parent and not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: cannot write in {parent} (permission denied)")
    return path


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
