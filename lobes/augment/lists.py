"""Writes noise and impulse-response lists (SpeechBrain's CSV format) from a
MUSAN or RIRS_NOISES folder, for ``augment.noise.csv`` / ``augment.reverb.csv``::

    python -m lobes.augment.lists musan /data/musan noise.csv --subsets noise music
    python -m lobes.augment.lists rirs /data/RIRS_NOISES rirs.csv

SpeechBrain's own ``augment.preparation.write_csv`` rewrites multi-channel
files and deletes long ones in place; this writer only reads headers and
never touches the data.
"""

import argparse
import os

import soundfile as sf

from lobes.augment.noise import LIST_COLUMNS
from lobes.utils.files import atomic_write_text

MUSAN_SUBSETS = ("noise", "music", "speech")
# real_rirs_isotropic_noises holds multi-channel files: not listed by default.
RIRS_SUBSETS = ("simulated_rirs", "real_rirs_isotropic_noises", "pointsource_noises")


def audio_files(folder):
    """Sorted ``.wav``/``.flac`` files under ``folder``."""
    found = []
    for root, _, files in os.walk(folder):
        found += [os.path.join(root, f) for f in files if f.lower().endswith((".wav", ".flac"))]
    return sorted(found)


def write_audio_list(files, csv_path, root):
    """Writes one row per file: ID (path under ``root``), duration, absolute path.

    Multi-channel files are an error naming the file (the augmenters take mono).

    Example
    -------
    >>> import numpy as np
    >>> folder = getfixture("tmp_path")
    >>> sf.write(folder / "a.wav", np.zeros(800), 16000)
    >>> write_audio_list([str(folder / "a.wav")], str(folder / "list.csv"), str(folder))
    1
    >>> open(folder / "list.csv").read().splitlines()[1].split(",")[:2]
    ['a', '0.050']
    """
    rows = []
    for path in files:
        info = sf.info(path)
        if info.channels != 1:
            raise ValueError(
                f"{path} has {info.channels} channels: leave its subset out (e.g. "
                f"real_rirs_isotropic_noises) or mix it down first"
            )
        name = os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, "_")
        ext = os.path.splitext(path)[1].lstrip(".").lower()
        rows.append([name, f"{info.frames / info.samplerate:.3f}", os.path.abspath(path), ext, ""])
    if not rows:
        raise ValueError(f"no .wav or .flac files found for {csv_path}")
    lines = [",".join(LIST_COLUMNS)]
    for row in rows:
        if any("," in field for field in row):
            raise ValueError(f"{row[2]}: a comma in the path does not fit the CSV list")
        lines.append(",".join(row))
    atomic_write_text(csv_path, "\n".join(lines) + "\n")
    return len(rows)


def _subset_files(folder, subsets, known, corpus):
    files = []
    for subset in subsets:
        if subset not in known:
            raise ValueError(f"{corpus} has no subset {subset!r}; known: {', '.join(known)}")
        path = os.path.join(folder, subset)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path} is missing: is {folder} the {corpus} folder?")
        files += audio_files(path)
    return files


def musan_list(musan_folder, csv_path, subsets=("noise",)):
    """List of MUSAN files (``noise``, ``music``, ``speech``: babble)."""
    files = _subset_files(musan_folder, subsets, MUSAN_SUBSETS, "MUSAN")
    return write_audio_list(files, csv_path, musan_folder)


def rirs_list(rirs_folder, csv_path, subsets=("simulated_rirs",)):
    """List of RIRS_NOISES files: impulse responses (``simulated_rirs``) or
    noises (``pointsource_noises``)."""
    files = _subset_files(rirs_folder, subsets, RIRS_SUBSETS, "RIRS_NOISES")
    return write_audio_list(files, csv_path, rirs_folder)


def main(argv=None):
    """``python -m lobes.augment.lists``: writes a MUSAN noise or RIR list."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", choices=["musan", "rirs"])
    parser.add_argument("folder", help="the MUSAN or RIRS_NOISES folder")
    parser.add_argument("csv", help="list to write")
    parser.add_argument("--subsets", nargs="+", help="default: noise (MUSAN), simulated_rirs (RIRS)")
    args = parser.parse_args(argv)
    write = musan_list if args.corpus == "musan" else rirs_list
    kwargs = {"subsets": args.subsets} if args.subsets else {}
    count = write(args.folder, args.csv, **kwargs)
    print(f"wrote {count} files to {args.csv}")


if __name__ == "__main__":
    main()
