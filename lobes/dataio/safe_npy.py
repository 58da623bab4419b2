"""Reads ``.npy`` files without running code from them.

``np.load(path, allow_pickle=True)`` unpickles an object array, and a
pickle can call any Python function: a dataset file could run code.
PartialSpoof's segment labels are, however, pickled dicts (``np.save`` of
``{utt_id: array of '0'/'1'}``). ``load_npy`` therefore reads plain arrays
with ``allow_pickle=False`` and object arrays with a restricted unpickler
(the approach of Python's pickle documentation, "Restricting globals"):
the only callables it lets the pickle name are numpy's array and dtype
constructors, which build data and run nothing else; any other name (``os.system``,
``builtins.eval``, ...) is refused before it is looked up. A hand-written
reader is used because no well-kept library parses this pickle subset.
"""

import pickle

import numpy as np

# (module, name) pairs an np.save'd object array of strings or numbers needs.
ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),  # numpy < 2
    ("numpy._core.multiarray", "_reconstruct"),  # numpy >= 2
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class UnsafeDataError(ValueError):
    """A data file whose pickle names a callable outside ``ALLOWED_GLOBALS``."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, stream, path):
        super().__init__(stream, encoding="ASCII")  # np.load's default
        self.path = path

    def find_class(self, module, name):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeDataError(
            f"{self.path}: refused to load: its pickle calls {module}.{name}, which is not a "
            "numpy array constructor (a data file must not run code)"
        )


def load_npy(path):
    """The array in ``path`` (an object array read with the restricted unpickler).

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> np.save(folder / "d.npy", {"LA_D_1": np.array(["1", "0"])})
    >>> load_npy(folder / "d.npy").item()["LA_D_1"].tolist()
    ['1', '0']
    >>> class Evil:
    ...     def __reduce__(self):
    ...         return (print, ("code ran",))
    >>> np.save(folder / "evil.npy", np.array([Evil()], dtype=object))
    >>> load_npy(folder / "evil.npy")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    lobes.dataio.safe_npy.UnsafeDataError: .../evil.npy: refused to load: its pickle calls builtins.print, which is
    not a numpy array constructor (a data file must not run code)
    """
    with open(path, "rb") as fin:
        version = np.lib.format.read_magic(fin)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(fin)
        elif version == (2, 0):
            _, _, dtype = np.lib.format.read_array_header_2_0(fin)
        else:
            raise ValueError(f"{path}: .npy format version {version} is not supported")
        if not dtype.hasobject:
            fin.seek(0)
            return np.load(fin, allow_pickle=False)
        array = _RestrictedUnpickler(fin, path).load()
    if not isinstance(array, np.ndarray):
        raise UnsafeDataError(f"{path}: expected a numpy array, found {type(array).__name__}")
    return array
