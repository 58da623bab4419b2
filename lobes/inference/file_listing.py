"""Which paths given to ``lobes.detect`` are audio files it may read.

Only regular files are opened: opening a FIFO blocks until a writer comes
(forever, for a stray ``pipe.wav``), and a device or socket is no audio.
Such entries of a folder are skipped with a message; a symlink loop, a
dangling link and a path that does not exist are named as errors. A name
holding a TAB, a newline or a carriage return is refused, because the
score file has one ``PATH<TAB>SCORE`` line per file and such a name would
split or forge lines.
"""

import errno
import os
import stat
from dataclasses import dataclass

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
LINE_BREAKING = ("\t", "\n", "\r")
_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


@dataclass(frozen=True)
class Problem:
    """A path that is not scored: ``error`` ones make the exit code 1;
    the others (special files found in folders) are skipped with a note."""

    path: str
    reason: str
    error: bool = True

    def message(self):
        """The line printed for this path: error or skipped, the path and why."""
        return f"{'error' if self.error else 'skipped'}: {shown(self.path)}: {self.reason}"


def shown(path):
    """``path`` as printed in messages: escaped (Python's repr) when it holds
    a character that would break the line.

    Example
    -------
    >>> shown("a/b.wav"), shown("a/b\\tc.wav")
    ('a/b.wav', "'a/b\\\\tc.wav'")
    """
    return repr(path) if any(c in path for c in LINE_BREAKING) else path


def classify(path, in_folder):
    """None when ``path`` is a readable regular file (or a link to one),
    else its ``Problem``."""
    if any(c in path for c in LINE_BREAKING):
        return Problem(path, "its name holds a TAB, newline or carriage return, which the score "
                             "file cannot hold; rename it")
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return Problem(path, "symlink loop")
        if os.path.islink(path):
            return Problem(path, f"dangling symlink (to {os.readlink(path)})")
        return Problem(path, "no such file or folder")
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return Problem(path, f"{kind}, not a regular file: not read", error=not in_folder)


def list_audio(paths):
    """Audio files under ``paths`` in a stable order, and the ``Problem`` s.

    A file named explicitly is tried whatever its extension; folders are
    walked (sorted, symlinked sub-folders not followed) for files with an
    audio extension.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> for name in ("b.wav", "sub/a.FLAC", "notes.txt", "x\\ty.wav"):
    ...     (folder / name).parent.mkdir(exist_ok=True)
    ...     _ = (folder / name).write_bytes(b"")
    >>> os.mkfifo(folder / "pipe.wav")
    >>> os.symlink("loop.wav", folder / "loop.wav")
    >>> os.symlink("loopdir", folder / "loopdir")
    >>> files, problems = list_audio([folder, folder / "nope.wav"])
    >>> [os.path.relpath(f, folder) for f in files]
    ['b.wav', 'sub/a.FLAC']
    >>> found = [(os.path.basename(p.path), p.reason.split(",")[0], p.error) for p in problems]
    >>> found  # doctest: +NORMALIZE_WHITESPACE
    [('loop.wav', 'symlink loop', True), ('loopdir', 'symlink loop', True), ('pipe.wav', 'a FIFO (named pipe)',
    False), ('x\\ty.wav', 'its name holds a TAB', True), ('nope.wav', 'no such file or folder', True)]
    """
    files, problems = [], []
    for path in map(str, paths):
        if os.path.isdir(path) and not any(c in path for c in LINE_BREAKING):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for name in dirs:  # os.walk does not follow these: say so
                    found = os.path.join(root, name)
                    if os.path.islink(found):
                        problem = classify(found, in_folder=True)
                        problems.append(problem if problem is not None and problem.error else
                                        Problem(found, "a symlinked folder, not followed", error=False))
                for name in sorted(names):
                    found = os.path.join(root, name)
                    if name.lower().endswith(AUDIO_EXTENSIONS):
                        problem = classify(found, in_folder=True)
                        (files.append(found) if problem is None else problems.append(problem))
                    elif os.path.islink(found) and classify(found, True) == Problem(found, "symlink loop"):
                        problems.append(Problem(found, "symlink loop"))  # os.walk lists it as a file
        else:
            problem = classify(path, in_folder=False)
            (files.append(path) if problem is None else problems.append(problem))
    return files, problems
