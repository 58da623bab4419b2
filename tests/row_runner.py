#!/usr/bin/env python3
"""Runs recipe scripts as ``__main__`` in forked children of one interpreter.

Importing torch, SpeechBrain and transformers costs about 9 s of CPU per
process, more than a recipe-test row's own work on tiny samples. So this
process imports them once, then, for each request read from stdin (one JSON
object a line: ``script``, ``argv``, ``cwd``, ``log_prefix``), forks a child
that runs the script exactly as ``python script argv...`` would (``sys.argv``,
working folder, the script's folder first on ``sys.path``), with its stdout
and stderr in ``<log_prefix>.stdout`` / ``.stderr``. The child's exit code is
answered as ``ROW-RESULT {"rc": n}``. Each row still runs in its own process,
so rows share no state; forking happens before any tensor work in this
process, which keeps OpenMP's thread pool out of the children's way.
"""

import json
import os
import runpy
import sys
import traceback


def run_script(script, argv, cwd, log_prefix):
    """Forks, runs ``script`` as ``__main__`` in the child, returns its exit code."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    code = 1
    try:
        os.chdir(cwd)
        for fd, suffix in ((1, ".stdout"), (2, ".stderr")):
            log = os.open(log_prefix + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log, fd)
            os.close(log)
        sys.argv = [script, *argv]
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # the row's failure, reported through its stderr file
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main():
    # The heavy imports every recipe needs, done once for all rows.
    import speechbrain  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import lobes.models.ssl  # noqa: F401
    import lobes.training.brain  # noqa: F401
    import lobes.training.recipe  # noqa: F401

    print("ROW-READY", flush=True)
    for line in sys.stdin:
        if line.strip():
            request = json.loads(line)
            print("ROW-RESULT " + json.dumps({"rc": run_script(**request)}), flush=True)


if __name__ == "__main__":
    main()
