"""Checks of decoded audio and of audio files, done where audio is read.

``check_finite`` refuses a waveform holding NaN or infinite samples (one
such file turns every layer weight and score of a run into NaN).
``scan_files`` decodes many files in parallel worker processes, either only
their end (``tail``: a truncated or corrupt compressed file fails there, in
a fraction of the time of a full decode) or in full (``full``: also finds
non-finite samples), and caches each file's verdict by its size and
modification time, so that a rerun does not decode it again.
"""

import json
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import soundfile as sf
from tqdm import tqdm

from lobes.utils.files import atomic_write_text

TAIL_FRAMES = 4096  # about 0.26 s at 16 kHz: the last compressed blocks
BLOCK_FRAMES = 1 << 18  # full scans read this many frames at a time
PARALLEL_MIN = 64  # fewer files are decoded in this process (no start-up cost)


class NonFiniteAudioError(ValueError):
    """Audio holding NaN or infinite samples; the message names the file."""


def check_finite(data, path, where="", offset=0):
    """Raises ``NonFiniteAudioError`` naming ``path`` (after ``where``, e.g.
    a protocol ``file:line``) when ``data`` holds NaN or inf samples.
    ``offset``: the file sample at which ``data`` starts (block-by-block
    reading), so that the first bad sample is named in file samples.

    Example
    -------
    >>> check_finite(np.zeros(3), "a.wav")
    >>> check_finite(np.array([0.0, np.nan, np.inf]), "a.wav", "protocol.txt:3: ")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    lobes.dataio.audio_checks.NonFiniteAudioError: protocol.txt:3: a.wav holds 2 non-finite samples (NaN or inf),
    first at sample 1
    """
    finite = np.isfinite(np.asarray(data))
    if finite.all():
        return
    bad = np.flatnonzero(~finite.reshape(finite.shape[0], -1).all(axis=1))
    raise NonFiniteAudioError(
        f"{where}{path} holds {bad.size} non-finite samples (NaN or inf)"
        f"{' in the block read from sample ' + str(offset) if offset else ''}, first at sample {bad[0] + offset}"
    )


def scan_file(path, mode="tail"):
    """Decodes the end (``mode="tail"``) or all (``"full"``) of ``path``;
    returns None when it decodes to the length its header says, with finite
    samples, else the reason.

    Example
    -------
    >>> path = getfixture("tmp_path") / "a.flac"
    >>> sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 16000), 16000)
    >>> scan_file(path) is None
    True
    >>> _ = path.write_bytes(path.read_bytes()[:10000])  # truncated
    >>> scan_file(path)
    'cannot decode ...'

    """
    try:
        with sf.SoundFile(str(path)) as fin:
            frames = fin.frames
            if mode == "tail":
                start = max(frames - TAIL_FRAMES, 0)
                fin.seek(start)
                blocks = [fin.read(frames - start, dtype="float32", always_2d=True)]
            else:
                blocks = list(fin.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True))
                start = 0
            n_read = sum(len(block) for block in blocks)
            if n_read != frames - start:
                return f"truncated: its header says {frames} frames, {start + n_read} decode"
            for block in blocks:
                check_finite(block, path)
    except NonFiniteAudioError as err:
        return str(err)
    except Exception as err:  # soundfile raises several types for bad files
        return f"cannot decode {path}: {err}"
    return None


def _fingerprint(path):
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def _scan(args):
    path, mode = args
    return scan_file(path, mode)


def scan_files(paths, mode="tail", workers=None, cache_file=None, desc="checking audio"):
    """``{path: reason}`` for each of ``paths`` that ``scan_file`` refuses.

    Files are decoded in ``workers`` processes (all CPUs by default; 0: in
    this process). With ``cache_file``, the verdicts are saved there with
    each file's size and modification time, and a file unchanged since is
    not decoded again.
    """
    paths = [str(p) for p in paths]
    cache = {}
    if cache_file and os.path.isfile(cache_file):
        with open(cache_file, encoding="utf-8") as fin:
            cache = json.load(fin)
    cache = cache.get(mode, {}) if isinstance(cache, dict) else {}
    fingerprints = {path: _fingerprint(path) for path in paths}
    todo = [p for p in paths if p not in cache or cache[p][0] != fingerprints[p]]
    workers = os.cpu_count() if workers is None else workers
    with tqdm(total=len(todo), desc=desc, unit="file", mininterval=2.0, disable=not todo) as bar:
        if workers and workers > 1 and len(todo) >= PARALLEL_MIN:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                chunk = max(1, min(256, len(todo) // (4 * workers)))
                verdicts = []
                for verdict in pool.map(_scan, ((p, mode) for p in todo), chunksize=chunk):
                    verdicts.append(verdict)
                    bar.update()
        else:
            verdicts = []
            for path in todo:
                verdicts.append(scan_file(path, mode))
                bar.update()
    for path, verdict in zip(todo, verdicts):
        cache[path] = [fingerprints[path], verdict]
    if cache_file and todo:
        atomic_write_text(cache_file, json.dumps({mode: cache}) + "\n")
    return {path: cache[path][1] for path in paths if cache[path][1] is not None}
