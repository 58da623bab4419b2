"""Fingerprints of the input files a preparation step read, for its
``skip()`` check: a protocol or list edited after preparation makes the
next run prepare again instead of reusing a stale manifest.

A fingerprint is a file's size and modification time (nanoseconds); it is
taken, never the content's hash, because protocols are read whole anyway
and an edit changes the modification time. Readers call ``note_input`` for
each protocol or list file; ``start_recording`` (called by the skip check)
begins a fresh record, and ``recorded_inputs`` returns it for the options
file.
"""

import os

_recorded = {}


def fingerprint(path):
    """``[size, mtime_ns]`` of ``path``, or None when it does not exist.

    Example
    -------
    >>> path = getfixture("tmp_path") / "p.txt"
    >>> _ = path.write_text("abc")
    >>> fingerprint(path)[0], fingerprint(path.with_name("none"))
    (3, None)
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def start_recording():
    """Forgets the inputs noted so far (a preparation run begins)."""
    _recorded.clear()


def note_input(path):
    """Records ``path`` (a protocol or list file) as an input of the
    preparation run under way."""
    path = os.path.abspath(path)
    _recorded[path] = fingerprint(path)


def recorded_inputs():
    """``{absolute path: fingerprint}`` of the inputs noted since
    ``start_recording``."""
    return dict(sorted(_recorded.items()))


def changed_inputs(inputs):
    """Paths of ``inputs`` (as from ``recorded_inputs``) whose fingerprint
    differs now: edited, replaced or removed.

    Example
    -------
    >>> path = getfixture("tmp_path") / "p.txt"
    >>> _ = path.write_text("abc")
    >>> start_recording(); note_input(path); saved = recorded_inputs()
    >>> changed_inputs(saved)
    []
    >>> _ = path.write_text("abcd")
    >>> changed_inputs(saved) == [str(path)]
    True
    """
    return [path for path, saved in inputs.items() if fingerprint(path) != saved]
