"""Command line: score audio files with a release (folder or hub id) or a
trained recipe output folder.

    python -m lobes.detect MODEL PATH [PATH ...] --out scores.txt [--output raw|llr|prob]

MODEL is a release folder or hub id (``python -m lobes.release``), or a run
folder or one of its branch folders; nothing in it is run as code.

PATHs are files or folders (searched recursively for .wav, .flac, .ogg and
.mp3 files; a file named explicitly is tried whatever its extension). The
output has one ``PATH<TAB>SCORE`` line per scored file (score = bona fide
logit, higher = more bona fide), in the order the files were found, plus ``<TAB>bonafide|spoof`` with
``--threshold`` (bona fide when the score is at or above it); the decisions
are also printed. Files that cannot be read, hold no samples or hold NaN/inf
samples, symlink loops and names holding a TAB, newline or carriage return
are named on stderr and left out of the output; the other files are still
scored and written, and the exit code is 1. Only regular files are read: a
FIFO, socket or device found in a folder is skipped with a note. Exit code
2: no audio found, bad usage, or another run writing the same ``--out``
(its lock ``<out>.lock`` is held: a second writer fails, never wins).

``--output llr`` or ``prob`` writes the calibrated LLR or the posterior
probability of bona fide (at ``--prior``, by default the ASVspoof 5 cost
model's effective prior) instead of the raw logit, with a decision column at
the Bayes threshold unless ``--threshold`` (on the written value) is given.
Whenever ``--output`` is given, the first line is a ``#`` comment saying what
the columns are; without it the output is exactly as before (raw logits, no
header).

Audio is decoded in ``--num-workers`` DataLoader workers while the model
scores, with a progress bar on stderr. ``--precision`` and ``--backend``
choose a faster encoder (see docs/speed.md).

Under torchrun every rank scores its shard of the files and rank 0 writes
the one merged output, each file exactly once, in the same order as a
single-process run::

    torchrun --standalone --nproc_per_node=2 -m lobes.detect MODEL_DIR audio/ --out s.txt

Example::

    python -m lobes.detect results/ASVspoof2019/ffn/N6/seed1 my_audio/ clip.mp3 \
        --out scores.txt --threshold 0.0 --window 4.04 --hop 2.0 --aggregation min
"""

import argparse
import math
import os
import sys

import torch
from speechbrain.utils.distributed import ddp_broadcast, get_rank, is_distributed_initialized

from lobes.evaluation.calibration import check_prior
from lobes.inference import timeline_outputs as long_audio
from lobes.inference.cli_options import (
    MIN_HOP_S,
    MIN_WINDOW_S,
    finite_number,
    non_negative_int,
    positive_int,
    seconds,
)
from lobes.inference.detector import SpoofDetector
from lobes.inference.fastpaths import BACKENDS
from lobes.inference.file_listing import list_audio, shown
from lobes.inference.logs import quiet_libraries
from lobes.inference.outputs import DESCRIPTIONS, OUTPUTS
from lobes.inference.release_loader import is_release_source
from lobes.inference.scoring import AGGREGATIONS
from lobes.inference.stdin_stream import STREAM_NAME, run_stream
from lobes.models.precision import PRECISIONS
from lobes.training.distributed import gather_unique, init_distributed, is_launched, world_size
from lobes.utils.files import atomic_write_text, checked_output_file
from lobes.utils.output_lock import OutputLock, OutputLockedError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


def find_audio(paths):
    """Audio files under ``paths``, in a stable order, and the paths not read.

    Returns
    -------
    files : list of str
        Explicit files, then the audio files of each folder (sorted walk);
        regular files only (``lobes.inference.file_listing``).
    problems : list of lobes.inference.file_listing.Problem
        Missing paths, symlink loops, names holding a TAB/newline/CR
        (errors), and special files found in folders (skipped).

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> for name in ("b.wav", "sub/a.FLAC", "notes.txt"):
    ...     (folder / name).parent.mkdir(exist_ok=True)
    ...     _ = (folder / name).write_bytes(b"")
    >>> files, problems = find_audio([folder, folder / "nope.wav"])
    >>> [os.path.relpath(f, folder) for f in files], len(problems)
    (['b.wav', 'sub/a.FLAC'], 1)
    """
    return list_audio(paths)


def decision(score, threshold):
    """``"bonafide"`` at or above the threshold, else ``"spoof"``.

    Example
    -------
    >>> decision(0.5, 0.5), decision(-1.0, 0.5)
    ('bonafide', 'spoof')
    """
    return "bonafide" if score >= threshold else "spoof"


def score_paths(detector, files, batch_size, window=None, hop=None, aggregation=None,
                progress=True, num_workers=0, results_out=None):
    """Scores ``files``; returns ``(scores, errors)`` as path -> score / message.

    Files are decoded in ``num_workers`` DataLoader workers, ``batch_size``
    at a time; one that cannot be read is recorded in ``errors`` and the
    others are still scored. ``results_out`` (a dict), when given, receives
    path -> ``DetectionResult`` (window scores, for the timeline).
    """
    errors = {}
    results = detector.score_files(
        files, window=window, hop=hop, aggregation=aggregation, batch_size=batch_size,
        num_workers=num_workers, progress=progress, errors=errors,
    )
    scores = {}
    for path, result in zip(files, results):
        if result is None:
            continue
        if not math.isfinite(result.score):  # damaged weights or audio: never a nan in the score file
            errors[path] = ValueError(
                f"{shown(path)}: the model gave a non-finite score ({result.score}); its weights or "
                "this file hold NaN/inf (python -m lobes.release --verify checks a release)"
            )
            continue
        scores[path] = result.score
    if results_out is not None:
        results = [None if path in errors else r for path, r in zip(files, results)]
        results_out.update((path, r) for path, r in zip(files, results) if r is not None)
    return scores, errors


def _once_each(files):
    """``files`` with repeats dropped (first place kept), and ``{path: count}``
    of the repeated ones.

    Example
    -------
    >>> _once_each(["a.wav", "b.wav", "a.wav", "a.wav"])
    (['a.wav', 'b.wav'], {'a.wav': 3})
    """
    counts = {}
    for path in files:
        counts[path] = counts.get(path, 0) + 1
    return list(counts), {path: n for path, n in counts.items() if n > 1}


def shard(files, rank, world_size):
    """Files scored by ``rank``: every ``world_size``-th one, so each file once.

    Example
    -------
    >>> [shard(list("abcde"), r, 2) for r in (0, 1)]
    [['a', 'c', 'e'], ['b', 'd']]
    """
    return files[rank::world_size]


def gather_results(*parts):
    """Every rank's ``(scores, errors, ...)`` dicts merged (unchanged in one process)."""
    return tuple(
        dict(gather_unique(list(part.items()), key=lambda item: item[0])) for part in parts
    )


def written_name(path):
    """``path`` as a score file writes it: UTF-8, with the bytes of a name
    that is not valid UTF-8 escaped (``bad\\xff.wav``), so that one file is
    one line and no score is lost to an encoding error.

    Example
    -------
    >>> written_name("a/b.wav"), written_name(os.fsdecode(b"bad\\xff.wav"))
    ('a/b.wav', 'bad\\\\xff.wav')
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def format_lines(files, scores, threshold=None):
    """Output lines for the scored files, in input order."""
    lines = []
    for path in files:
        if path not in scores:
            continue
        line = f"{written_name(path)}\t{scores[path]:.6f}"
        if threshold is not None:
            line += "\t" + decision(scores[path], threshold)
        lines.append(line + "\n")
    return lines


def parse_args(argv=None):
    """The options of ``python -m lobes.detect``."""
    parser = argparse.ArgumentParser(
        prog="python -m lobes.detect",
        description="Score audio files with a trained countermeasure (release or recipe output folder).",
    )
    parser.add_argument("model_dir", help="release folder or hub id, or a recipe output folder "
                                          "(hyperparams.yaml + save/) or branch folder")
    parser.add_argument("paths", nargs="+", help="audio files or folders (recursive)")
    parser.add_argument("--out", help="score file to write; stdout when omitted")
    parser.add_argument("--threshold", type=finite_number,
                        help="print bonafide/spoof decisions at this value of the written column")
    parser.add_argument("--output", choices=OUTPUTS,
                        help="column written: raw logit, calibrated LLR or posterior of bona fide "
                             "(with a header line; llr/prob also decide at the Bayes threshold)")
    parser.add_argument("--prior", type=float,
                        help="bona fide prior of posteriors and the Bayes threshold "
                             "(default: the ASVspoof 5 cost model's effective prior)")
    parser.add_argument("--window", type=seconds("--window", MIN_WINDOW_S),
                        help=f"window length in seconds (sliding windows), at least {MIN_WINDOW_S}")
    parser.add_argument("--hop", type=seconds("--hop", MIN_HOP_S),
                        help="window hop in seconds (default: half a window)")
    parser.add_argument("--aggregation", choices=AGGREGATIONS, default="mean",
                        help="how window scores make the file score")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--device", default="cpu",
                        help="cpu or cuda (under torchrun: each rank takes cuda:LOCAL_RANK)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="encoder precision: bf16 needs native bf16 (falls back to fp32 "
                             "with a warning), fp16 a GPU, int8 a CPU")
    parser.add_argument("--backend", choices=BACKENDS, default="eager",
                        help="eager PyTorch, torch.compile, or ONNX Runtime (fp32/int8)")
    parser.add_argument("--num-workers", type=non_negative_int, default=2,
                        help="DataLoader workers decoding audio (0: in the main process)")
    parser.add_argument("--distributed-backend", default=None,
                        help="under torchrun: gloo (CPU) or nccl (GPU); default from --device")
    parser.add_argument("--ssl-source", help="load the SSL from here instead of the recorded source")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    long_audio.add_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None):
    """Runs the CLI; returns the exit code (0 ok, 1 some files failed, 2 nothing to do)."""
    args = parse_args(argv)
    usage_error = long_audio.check_arguments(args)
    if usage_error:
        print(f"error: {usage_error}", file=sys.stderr)
        return 2
    if args.out:
        try:  # before any work: a folder, a device or an unwritable place
            args.out = checked_output_file(args.out)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.stream:
        return _stream(args)
    files, problems = find_audio(args.paths)
    files, repeated = _once_each(files)
    for problem in problems:
        print(problem.message(), file=sys.stderr)
    for path, count in repeated.items():
        print(f"note: {shown(path)} is listed {count} times: scored once", file=sys.stderr)
    missing = [p.path for p in problems if p.error]  # counted as failed
    if not files:
        print("error: no audio files found", file=sys.stderr)
        return 2
    quiet_libraries()
    device = args.device
    if is_launched():
        device = _init_distributed(args)
    rank, n_ranks = get_rank() or 0, world_size()
    lock = None
    try:
        # One writer per --out (rank 0's lock): a second run fails at once,
        # before it loads a model.
        lock = OutputLock(args.out) if args.out and rank == 0 else None
        locked_out = None
        if lock is not None:
            try:
                lock.acquire()
            except OutputLockedError as err:
                locked_out = str(err)
        locked_out = ddp_broadcast(locked_out, src=0)
        if locked_out:
            print(f"error: {locked_out}", file=sys.stderr)
            return 2
        try:
            detector = _load_detector(args, device)
        except (ValueError, FileNotFoundError, RuntimeError) as err:
            # A model that cannot be loaded (named in the message), or an
            # option the model or the hardware cannot run.
            print(f"error: {err}", file=sys.stderr)
            return 2
        results = {}
        scores, errors = score_paths(
            detector, shard(files, rank, n_ranks), args.batch_size, args.window, args.hop,
            args.aggregation, progress=not args.no_progress and rank == 0,
            num_workers=args.num_workers, results_out=results,
        )
        if not long_audio.wanted(args):
            results = {}  # not gathered across ranks when not written
        scores, errors, results = gather_results(scores, errors, results)
        code = _report(args, files, missing, scores, errors, outputs=detector.outputs) if rank == 0 else None
        if rank == 0 and long_audio.wanted(args):
            code = long_audio.write_outputs(args, files, results, detector) or code
        # Rank 0's exit code on every rank, so torchrun reports one outcome.
        return ddp_broadcast(code, src=0)
    finally:
        if lock is not None:
            lock.release()
        if is_distributed_initialized():
            torch.distributed.destroy_process_group()


def _stream(args):
    """``PATH -`` with ``--stream``: scores stdin as it arrives (lobes.inference.stdin_stream)."""
    quiet_libraries()
    try:
        detector = _load_detector(args, args.device)
        result = run_stream(args, detector)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"stdin: {result.duration:.2f} s, {len(result.window_scores)} windows, "
          f"score {result.score:.6f}", file=sys.stderr)
    if long_audio.wanted(args):
        return long_audio.write_outputs(args, [STREAM_NAME], {STREAM_NAME: result}, detector)
    return 0


def _init_distributed(args):
    """Joins torchrun's process group (``lobes.training.distributed``: launch checks,
    each rank on the GPU of its local rank); returns this rank's device."""
    backend = args.distributed_backend or ("nccl" if args.device.startswith("cuda") else "gloo")
    run_opts = {"distributed_backend": backend, "device": args.device}
    try:
        init_distributed(run_opts)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    return run_opts["device"]


def _load_detector(args, device):
    """The detector of ``args.model_dir``: a release or a run folder, with
    calibrated outputs checked before any audio is read."""
    options = dict(run_opts={"device": device}, precision=args.precision, backend=args.backend)
    if is_release_source(args.model_dir):
        detector = SpoofDetector.from_pretrained(args.model_dir, **options)
    else:
        detector = SpoofDetector.from_output_folder(args.model_dir, ssl_source=args.ssl_source, **options)
    detector.prior = check_prior(args.prior, option="--prior")
    if args.output in ("llr", "prob") and detector.outputs is None:
        raise FileNotFoundError(
            f"{args.model_dir} has no calibration.json (score its dev set first): "
            f"--output {args.output} needs one"
        )
    return detector


def output_columns(args, scores, outputs):
    """``(values, threshold, header)`` of the score file under ``--output``."""
    if args.output is None:  # today's output, unchanged
        return scores, args.threshold, None
    values = {path: outputs.column(s, args.output) if outputs else s for path, s in scores.items()}
    threshold, rule = args.threshold, f"bonafide if the value >= {args.threshold}"
    if threshold is None and args.output != "raw":
        threshold = outputs.bayes_threshold if args.output == "llr" else 0.5
        rule = (f"bonafide if llr >= {outputs.bayes_threshold:.6f}, the Bayes threshold at bona "
                f"fide prior {outputs.prior:.6f}")
    header = f"# lobes.detect --output {args.output}: PATH<TAB>{DESCRIPTIONS[args.output]}"
    if args.output == "prob":
        header += f" at prior {outputs.prior:.6f}"
    if threshold is not None:
        header += f"<TAB>decision ({rule})"
    return values, threshold, header + "\n"


def _report(args, files, missing, scores, errors, outputs=None):
    """Writes the score file and prints the summary; returns the exit code."""
    values, threshold, header = output_columns(args, scores, outputs)
    lines = ([header] if header else []) + format_lines(files, values, threshold)
    if args.out:
        atomic_write_text(args.out, "".join(lines))
    if threshold is not None or not args.out:
        sys.stdout.write("".join(lines))
    for path in (p for p in files if p in errors):
        message = str(errors[path])
        # Most readers' messages name the file already: name it once.
        where = "" if path in message else f" {shown(path)}"
        print(f"error: could not score{where}: {message}", file=sys.stderr)
    failed = len(errors) + len(missing)
    print(f"scored {len(scores)} of {len(files) + len(missing)} files"
          + (f" into {args.out}" if args.out else "")
          + (f"; {failed} failed (listed above)" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
