"""File names read from data (protocols, lists, ``results.json``) stay in
the folder they belong to.

A name such as ``../../x`` or ``/etc/x`` in a protocol or a result file
would make a tool read or write outside its data or output folder. These
checks are lexical (no symlink is resolved: datasets are often trees of
links, which stay allowed).
"""

import os


class UnsafePathError(ValueError):
    """A file name from data that would leave its folder."""


def _where(origin):
    return f"{origin}: " if origin else ""


def safe_name(name, what="name", origin=""):
    """``name`` if it is one plain path component, else ``UnsafePathError``.

    Example
    -------
    >>> safe_name("eval")
    'eval'
    >>> safe_name("../eval", "test set name", "run/results.json")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    lobes.utils.safe_paths.UnsafePathError: run/results.json: test set name '../eval' is not a plain file name (no
    '/', '\\\\', '..' or control characters)
    """
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name
            or any(ord(c) < 32 for c in name)):
        raise UnsafePathError(
            f"{_where(origin)}{what} {name!r} is not a plain file name "
            "(no '/', '\\\\', '..' or control characters)"
        )
    return name


def safe_join(folder, relative, origin=""):
    """``folder/relative`` when ``relative`` stays inside ``folder``.

    Sub-folders are allowed; absolute paths, ``..`` components and NUL are
    not.

    Example
    -------
    >>> safe_join("data", "sub/a.flac")
    'data/sub/a.flac'
    >>> safe_join("data", "../../etc/passwd", "protocol.txt:3")
    Traceback (most recent call last):
    ...
    lobes.utils.safe_paths.UnsafePathError: protocol.txt:3: file name '../../etc/passwd' leaves its folder data
    """
    parts = relative.replace("\\", "/").split("/")
    if os.path.isabs(relative) or ".." in parts or "\x00" in relative or not relative.strip("/"):
        raise UnsafePathError(f"{_where(origin)}file name {relative!r} leaves its folder {folder}")
    return os.path.join(folder, relative)
