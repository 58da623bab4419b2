"""One writer per output file: ``<path>.lock``, created exclusively.

Two runs writing the same output each replace it atomically, so the last
to finish silently wins and the first run's results are lost while both
report success. A run takes the lock before its work and gives it back
after writing; a second run finds the lock and fails at once, naming the
holder. A lock left by a crashed run on this machine (its process is
gone) is taken over with a warning.
"""

import json
import logging
import os
import socket

logger = logging.getLogger(__name__)


class OutputLockedError(RuntimeError):
    """Another live run holds the output's lock."""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """Context manager holding ``<path>.lock`` while a run writes ``path``.

    Example
    -------
    >>> out = getfixture("tmp_path") / "scores.txt"
    >>> with OutputLock(out):
    ...     try:
    ...         OutputLock(out).acquire()
    ...     except OutputLockedError as err:
    ...         print(str(err).split(" (")[0])
    another run is writing .../scores.txt
    >>> os.path.exists(f"{out}.lock")
    False
    """

    def __init__(self, path):
        self.path = str(path)
        self.lock_path = self.path + ".lock"
        self.held = False

    def _create(self):
        fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as fout:
            json.dump({"pid": os.getpid(), "host": socket.gethostname()}, fout)

    def acquire(self):
        """Takes the lock, or raises naming the process that holds it."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            self._create()
        except FileExistsError:
            holder = self._holder()
            stale = (holder.get("host") == socket.gethostname()
                     and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]))
            if not stale:
                raise OutputLockedError(
                    f"another run is writing {self.path} (lock {self.lock_path}, held by "
                    f"{holder or 'an unknown process'}); wait for it, choose another --out, or "
                    "remove the lock if no such run is alive"
                ) from None
            logger.warning("taking over %s, left by process %s, which is gone",
                           self.lock_path, holder["pid"])
            os.remove(self.lock_path)
            self._create()
        self.held = True
        return self

    def _holder(self):
        try:
            with open(self.lock_path, encoding="utf-8") as fin:
                return json.load(fin)
        except (OSError, ValueError):
            return {}

    def release(self):
        """Gives the lock back (removes its file) if this process holds it."""
        if self.held:
            self.held = False
            try:
                os.remove(self.lock_path)
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
