"""Every row of ``tests/recipes/*.csv`` run as SpeechBrain's recipe tester runs it.

The command is ``python <Script_file> <Hparam_file> <test_debug_flags>
--device=cpu --output_folder=tests/tmp/<Dataset>_row_<n>`` from the
repository root, with the script's folder on ``PYTHONPATH``; then each file
in ``test_debug_checks``' ``file_exists=[...]`` must exist in the output
folder. Here the "repository root" is a temporary folder holding a link to
``recipes/`` and the sample trees (``tests/recipe_samples.py``), so nothing is
written into the checkout. A row that fails is a failing test.

Each row runs in its own process, forked from one interpreter that imported
torch, SpeechBrain and transformers once (``tests/row_runner.py``): that
import costs more CPU than a row's work. ``RECIPE_ROWS_FRESH_PROCESS=1``
starts a fresh ``python`` per row instead, exactly as SpeechBrain's tester.
"""

import csv
import glob
import json
import os
import re
import select
import shlex
import subprocess
import sys

import pytest
from recipe_samples import SAMPLE_BUILDERS, build_samples

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROW_FILES = sorted(glob.glob(os.path.join(REPO, "tests", "recipes", "*.csv")))
PATH_FIELDS = ("Script_file", "Hparam_file", "Data_prep_file", "Readme_file")
CHECK = re.compile(r"(\w+)=\[(.*?)\]")
ROW_TIMEOUT_S = 300
FRESH_PROCESS = os.environ.get("RECIPE_ROWS_FRESH_PROCESS") == "1"


def read_rows():
    rows = []
    for path in ROW_FILES:
        with open(path, encoding="utf-8", newline="") as fin:
            for index, row in enumerate(csv.DictReader(fin), 1):
                rows.append(pytest.param(row, id=f"{row['Dataset']}_row_{index}"))
    return rows


ROWS = read_rows()


def parse_checks(text):
    """``{"file_exists": [...]}`` from a ``test_debug_checks`` field.

    Example
    -------
    >>> parse_checks("file_exists=[train_log.txt,scores/eval.txt]")
    {'file_exists': ['train_log.txt', 'scores/eval.txt']}
    """
    checks = {key: [item.strip() for item in items.split(",") if item.strip()] for key, items in CHECK.findall(text)}
    unsupported = set(checks) - {"file_exists"}
    if unsupported:
        raise ValueError(f"unsupported checks {sorted(unsupported)} in {text!r}: teach this test to run them")
    return checks


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A stand-in repository root: ``recipes`` (a link) and ``tests/samples``."""
    root = tmp_path_factory.mktemp("recipe_rows")
    (root / "recipes").symlink_to(os.path.join(REPO, "recipes"), target_is_directory=True)
    datasets = sorted({param.values[0]["Dataset"] for param in ROWS} & set(SAMPLE_BUILDERS))
    build_samples(str(root / "tests" / "samples"), datasets)
    return root


class ForkRunner:
    """Client of ``tests/row_runner.py``: ``run(script, argv, cwd, log_prefix) -> rc``."""

    def __init__(self, env):
        self.process = subprocess.Popen(
            [sys.executable, os.path.join(REPO, "tests", "row_runner.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        self._read("ROW-READY", timeout=ROW_TIMEOUT_S)

    def _read(self, prefix, timeout):
        while True:
            ready, _, _ = select.select([self.process.stdout], [], [], timeout)
            if not ready:
                raise TimeoutError(f"row runner gave no {prefix} within {timeout} s")
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"row runner exited with {self.process.wait()}")
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def run(self, script, argv, cwd, log_prefix):
        request = dict(script=script, argv=argv, cwd=str(cwd), log_prefix=log_prefix)
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self._read("ROW-RESULT ", timeout=ROW_TIMEOUT_S))["rc"]

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def row_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO, env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def runner():
    if FRESH_PROCESS:
        yield None
        return
    client = ForkRunner(row_env())
    yield client
    client.close()


def run_row(runner, workspace, script, argv, output):
    """Runs one row; returns ``(rc, stdout, stderr)``."""
    log_prefix = str(workspace / output / "row")
    os.makedirs(workspace / output, exist_ok=True)
    if runner is not None:
        rc = runner.run(script, argv, workspace, log_prefix)
        with open(log_prefix + ".stdout") as out, open(log_prefix + ".stderr") as err:
            return rc, out.read(), err.read()
    env = row_env()
    # As the tester does: the script's folder on PYTHONPATH.
    env["PYTHONPATH"] = os.pathsep.join([str(workspace / os.path.dirname(script)), env["PYTHONPATH"]])
    result = subprocess.run(
        [sys.executable, script, *argv], cwd=workspace, env=env, capture_output=True, text=True,
        timeout=ROW_TIMEOUT_S,
    )
    return result.returncode, result.stdout, result.stderr


def test_every_row_file_has_rows_and_every_dataset_a_sample_builder():
    assert ROW_FILES and ROWS
    missing = sorted({param.values[0]["Dataset"] for param in ROWS} - set(SAMPLE_BUILDERS))
    assert not missing, f"no sample builder for {missing}: add one in tests/recipe_samples.py"


@pytest.mark.parametrize("row", ROWS)
def test_recipe_row(row, workspace, runner, request):
    for field in PATH_FIELDS:
        if row[field]:
            assert os.path.isfile(os.path.join(REPO, row[field])), f"{field} {row[field]} does not exist"
    flags = shlex.split(row["test_debug_flags"])
    assert any(f.startswith("--ssl_source=tests/samples/") for f in flags), (
        "rows must use the tiny local SSL model (--ssl_source=tests/samples/ssl/...): no hub here"
    )
    checks = parse_checks(row["test_debug_checks"])
    assert checks.get("file_exists"), "a row without file_exists checks proves little"
    output = os.path.join("tests", "tmp", request.node.callspec.id)
    argv = [row["Hparam_file"], *flags, "--device=cpu", f"--output_folder={output}"]
    rc, stdout, stderr = run_row(runner, workspace, row["Script_file"], argv, output)
    if rc != 0:
        pytest.fail(
            f"python {row['Script_file']} {' '.join(argv)} exited with {rc}\n"
            f"--- stdout ---\n{stdout[-3000:]}\n--- stderr ---\n{stderr[-5000:]}"
        )
    missing = missing_files(checks, workspace / output)
    assert not missing, f"{output} lacks {missing}"


def missing_files(checks, folder):
    """The ``file_exists`` entries absent from ``folder``."""
    return [name for name in checks["file_exists"] if not os.path.exists(os.path.join(folder, name))]


def test_a_failing_script_or_a_missing_file_fails_the_row(tmp_path, runner):
    # A stand-in recipe (no imports, so this costs nothing): exits 3 after one file.
    script = tmp_path / "fake_train.py"
    script.write_text(
        "import os, sys\n"
        "out = sys.argv[-1].split('=', 1)[1]\n"
        "open(os.path.join(out, 'train_log.txt'), 'w').close()\n"
        "print('stderr of the fake recipe', file=sys.stderr)\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    checks = parse_checks("file_exists=[train_log.txt,results.json]")
    for code in (0, 3):
        output = f"out{code}"
        rc, _, stderr = run_row(runner, tmp_path, str(script), [str(code), f"--output_folder={output}"], output)
        assert rc == code and "stderr of the fake recipe" in stderr
        assert missing_files(checks, tmp_path / output) == ["results.json"]
    with pytest.raises(ValueError, match="unsupported checks"):
        parse_checks("performance_check=[train_log.txt, loss, <=15, epoch: 2]")
