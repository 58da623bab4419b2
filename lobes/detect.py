"""Command line: score audio files with a trained recipe output folder.

    python -m lobes.detect MODEL_DIR PATH [PATH ...] --out scores.txt

PATHs are files or folders (searched recursively for .wav, .flac, .ogg and
.mp3 files; a file named explicitly is tried whatever its extension). The
output has one ``PATH<TAB>SCORE`` line per scored file (score = bona fide
logit, higher = more bona fide), in the order the files were found, plus ``<TAB>bonafide|spoof`` with
``--threshold`` (bona fide when the score is at or above it); the decisions
are also printed. Files that cannot be read, or hold no samples, are named on
stderr and left out of the output; the other files are still scored and
written, and the exit code is 1. Exit code 2: no audio found or bad usage.

Audio is decoded in ``--num-workers`` DataLoader workers while the model
scores, with a progress bar on stderr. ``--precision`` and ``--backend``
choose a faster encoder (see the README's speed section).

Under torchrun every rank scores its shard of the files and rank 0 writes
the one merged output, each file exactly once, in the same order as a
single-process run::

    torchrun --standalone --nproc_per_node=2 -m lobes.detect MODEL_DIR audio/ --out s.txt

Example::

    python -m lobes.detect results/ASVspoof2019/ffn/N6/seed1 my_audio/ clip.mp3 \
        --out scores.txt --threshold 0.0 --window 4.04 --hop 2.0 --aggregation min
"""

import argparse
import logging
import os
import sys
import warnings

import torch
from speechbrain.utils.distributed import ddp_broadcast, get_rank, is_distributed_initialized
from tqdm import tqdm
from transformers.utils import logging as transformers_logging

from lobes.distributed import gather_unique, init_distributed, is_launched, world_size
from lobes.fastpaths import BACKENDS
from lobes.inference import AGGREGATIONS, SpoofDetector
from lobes.precision import PRECISIONS
from lobes.scores import atomic_write_text
from lobes.serving import outputs as long_audio
from lobes.serving.stdin_stream import STREAM_NAME, run_stream

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
    scores = {path: r.score for path, r in zip(files, results) if r is not None}
    if results_out is not None:
        results_out.update((path, r) for path, r in zip(files, results) if r is not None)
    return scores, errors


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
    parser.add_argument("--device", default="cpu",
                        help="cpu or cuda (under torchrun: each rank takes cuda:LOCAL_RANK)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="encoder precision: bf16 needs native bf16 (falls back to fp32 "
                             "with a warning), fp16 a GPU, int8 a CPU")
    parser.add_argument("--backend", choices=BACKENDS, default="eager",
                        help="eager PyTorch, torch.compile, or ONNX Runtime (fp32/int8)")
    parser.add_argument("--num-workers", type=int, default=2,
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
    if args.stream:
        return _stream(args)
    files, missing = find_audio(args.paths)
    for path in missing:
        print(f"error: {path}: no such file or folder", file=sys.stderr)
    if not files:
        print("error: no audio files found", file=sys.stderr)
        return 2
    _quiet_libraries()
    device = args.device
    if is_launched():
        device = _init_distributed(args)
    rank, n_ranks = get_rank() or 0, world_size()
    try:
        try:
            detector = SpoofDetector.from_output_folder(
                args.model_dir, run_opts={"device": device}, ssl_source=args.ssl_source,
                precision=args.precision, backend=args.backend,
            )
        except ValueError as err:  # an option the model or the hardware cannot run
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
        code = _report(args, files, missing, scores, errors) if rank == 0 else None
        if rank == 0 and long_audio.wanted(args):
            code = long_audio.write_outputs(args, files, results, args.model_dir,
                                            long_audio.window_seconds(args, detector)) or code
        # Rank 0's exit code on every rank, so torchrun reports one outcome.
        return ddp_broadcast(code, src=0)
    finally:
        if is_distributed_initialized():
            torch.distributed.destroy_process_group()


def _stream(args):
    """``PATH -`` with ``--stream``: scores stdin as it arrives (lobes.serving.stdin_stream)."""
    _quiet_libraries()
    try:
        detector = SpoofDetector.from_output_folder(
            args.model_dir, run_opts={"device": args.device}, ssl_source=args.ssl_source,
            precision=args.precision, backend=args.backend,
        )
        result = run_stream(args, detector)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"stdin: {result.duration:.2f} s, {len(result.window_scores)} windows, "
          f"score {result.score:.6f}", file=sys.stderr)
    if long_audio.wanted(args):
        return long_audio.write_outputs(args, [STREAM_NAME], {STREAM_NAME: result},
                                        args.model_dir, long_audio.window_seconds(args, detector))
    return 0


def _init_distributed(args):
    """Joins torchrun's process group (``lobes.distributed``: launch checks,
    each rank on the GPU of its local rank); returns this rank's device."""
    backend = args.distributed_backend or ("nccl" if args.device.startswith("cuda") else "gloo")
    run_opts = {"distributed_backend": backend, "device": args.device}
    try:
        init_distributed(run_opts)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    return run_opts["device"]


def _report(args, files, missing, scores, errors):
    """Writes the score file and prints the summary; returns the exit code."""
    lines = format_lines(files, scores, args.threshold)
    if args.out:
        atomic_write_text(args.out, "".join(lines))
    if args.threshold is not None or not args.out:
        sys.stdout.write("".join(lines))
    for path in (p for p in files if p in errors):
        print(f"error: could not score {path}: {errors[path]}", file=sys.stderr)
    failed = len(errors) + len(missing)
    print(f"scored {len(scores)} of {len(files) + len(missing)} files"
          + (f" into {args.out}" if args.out else "")
          + (f"; {failed} failed (listed above)" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
