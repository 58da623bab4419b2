"""Command line: score audio files with a trained recipe output folder.

    python -m lobes.detect MODEL_DIR PATH [PATH ...] --out scores.txt

PATHs are files or folders (searched recursively for .wav, .flac, .ogg and
.mp3 files; a file named explicitly is tried whatever its extension). The
output has one ``PATH<TAB>SCORE`` line per scored file (score = bona fide
logit, higher = more bona fide), plus ``<TAB>bonafide|spoof`` with
``--threshold`` (bona fide when the score is at or above it); the decisions
are also printed. Files that cannot be read, or hold no samples, are named on
stderr and left out of the output; the other files are still scored and
written, and the exit code is 1. Exit code 2: no audio found or bad usage.

Example::

    python -m lobes.detect results/ASVspoof2019/ffn/N6/seed1 my_audio/ clip.mp3 \
        --out scores.txt --threshold 0.0 --window 4.04 --hop 2.0 --aggregation min
"""

import argparse
import logging
import os
import sys
import warnings

from tqdm import tqdm
from transformers.utils import logging as transformers_logging

from lobes.inference import AGGREGATIONS, SpoofDetector, read_audio
from lobes.scores import atomic_write_text

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


def find_audio(paths):
    """Audio files under ``paths``, in a stable order; missing paths are returned apart.

    Returns
    -------
    files : list of str
        Explicit files, then the audio files of each folder (sorted walk).
    missing : list of str
        Paths that do not exist.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> for name in ("b.wav", "sub/a.FLAC", "notes.txt"):
    ...     (folder / name).parent.mkdir(exist_ok=True)
    ...     _ = (folder / name).write_bytes(b"")
    >>> files, missing = find_audio([folder, folder / "nope.wav"])
    >>> [os.path.relpath(f, folder) for f in files], len(missing)
    (['b.wav', 'sub/a.FLAC'], 1)
    """
    files, missing = [], []
    for path in map(str, paths):
        if os.path.isfile(path):
            files.append(path)
        elif os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files += [
                    os.path.join(root, name)
                    for name in sorted(names)
                    if name.lower().endswith(AUDIO_EXTENSIONS)
                ]
        else:
            missing.append(path)
    return files, missing


def decision(score, threshold):
    """``"bonafide"`` at or above the threshold, else ``"spoof"``.

    Example
    -------
    >>> decision(0.5, 0.5), decision(-1.0, 0.5)
    ('bonafide', 'spoof')
    """
    return "bonafide" if score >= threshold else "spoof"


def score_paths(detector, files, batch_size, window=None, hop=None, aggregation=None,
                progress=True):
    """Scores ``files``; returns ``(scores, errors)`` as path -> score / message.

    Files are read ``batch_size`` at a time; one that cannot be read is
    recorded in ``errors`` and the others of its batch are still scored.
    """
    scores, errors = {}, {}
    with tqdm(total=len(files), unit="file", disable=not progress, file=sys.stderr) as bar:
        for first in range(0, len(files), batch_size):
            readable, wavs = [], []
            for path in files[first : first + batch_size]:
                try:
                    wavs.append(read_audio(path))
                    readable.append(path)
                except (RuntimeError, ValueError) as err:
                    errors[path] = str(err)
            if wavs:
                results = detector.score_waveforms(
                    wavs, window=window, hop=hop, aggregation=aggregation, batch_size=batch_size
                )
                scores.update((path, r.score) for path, r in zip(readable, results))
            bar.update(len(files[first : first + batch_size]))
    return scores, errors


def format_lines(files, scores, threshold=None):
    """Output lines for the scored files, in input order."""
    lines = []
    for path in files:
        if path not in scores:
            continue
        line = f"{path}\t{scores[path]:.6f}"
        if threshold is not None:
            line += "\t" + decision(scores[path], threshold)
        lines.append(line + "\n")
    return lines


def _quiet_libraries():
    """Silences expected loading chatter so that errors and the progress bar stand out."""
    transformers_logging.disable_progress_bar()
    # "<model> is frozen" is the intended state of an inference model.
    logging.getLogger("speechbrain.integrations.huggingface.huggingface").setLevel(logging.ERROR)
    # Raised inside torch's attention for WavLM's masks; harmless (see pytest.ini).
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lobes.detect",
        description="Score audio files with a trained countermeasure (recipe output folder).",
    )
    parser.add_argument("model_dir", help="recipe output folder (hyperparams.yaml + save/)")
    parser.add_argument("paths", nargs="+", help="audio files or folders (recursive)")
    parser.add_argument("--out", help="score file to write; stdout when omitted")
    parser.add_argument("--threshold", type=float, help="print bonafide/spoof decisions")
    parser.add_argument("--window", type=float, help="window length in seconds (sliding windows)")
    parser.add_argument("--hop", type=float, help="window hop in seconds (default: half a window)")
    parser.add_argument("--aggregation", choices=AGGREGATIONS, default="mean",
                        help="how window scores make the file score")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ssl-source", help="load the SSL from here instead of the recorded source")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the CLI; returns the exit code (0 ok, 1 some files failed, 2 nothing to do)."""
    args = parse_args(argv)
    files, missing = find_audio(args.paths)
    for path in missing:
        print(f"error: {path}: no such file or folder", file=sys.stderr)
    if not files:
        print("error: no audio files found", file=sys.stderr)
        return 2
    _quiet_libraries()
    detector = SpoofDetector.from_output_folder(
        args.model_dir, run_opts={"device": args.device}, ssl_source=args.ssl_source
    )
    scores, errors = score_paths(
        detector, files, args.batch_size, args.window, args.hop, args.aggregation,
        progress=not args.no_progress,
    )
    lines = format_lines(files, scores, args.threshold)
    if args.out:
        atomic_write_text(args.out, "".join(lines))
    if args.threshold is not None or not args.out:
        sys.stdout.write("".join(lines))
    for path, message in errors.items():
        print(f"error: could not score {path}: {message}", file=sys.stderr)
    failed = len(errors) + len(missing)
    print(f"scored {len(scores)} of {len(files) + len(missing)} files"
          + (f" into {args.out}" if args.out else "")
          + (f"; {failed} failed (listed above)" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
