"""Launches under torchrun that fail or are refused, and sweeps on two processes
(split from test_distributed.py so that the two pytest-xdist workers share
the torchrun runs more evenly)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import smoke_overrides
from test_distributed import DDP, run, scores, torchrun_command

from lobes.experiments.aggregate import load_results

pytestmark = [pytest.mark.torchrun, pytest.mark.slow]


def rank_pids(parent_pid):
    """{rank: pid} of the workers a torchrun process started."""
    pids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fin:
                env = dict(v.split(b"=", 1) for v in fin.read().split(b"\0") if b"=" in v)
            with open(f"/proc/{entry}/stat") as fin:
                ppid = int(fin.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == parent_pid and b"RANK" in env:
            pids[int(env[b"RANK"])] = int(entry)
    return pids


def wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


EPOCHS = 10


def test_dead_rank_fails_the_job_then_rerun_resumes(la_data, tiny_ssl, tmp_path):
    """kill -9 of one rank ends the whole job (no hang); the same command then
    resumes from the last checkpoint and finishes, multi-depth included."""
    output = tmp_path / "run"
    # 10 epochs: room to kill the job after epoch 2 (each takes well under a
    # second here), few for the rerun to finish.
    overrides = smoke_overrides(la_data, tiny_ssl, output, f"--number_of_epochs={EPOCHS}", n_layers="[1,2]")
    command = torchrun_command("ASVspoof2019", "ffn.yaml", *overrides, *DDP)
    job = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        wait_for(lambda: (output / "train_log.txt").is_file() and "epoch: 2" in (output / "train_log.txt").read_text(),
                 300, "two epochs")
        pids = rank_pids(job.pid)
        assert set(pids) == {0, 1}, pids
        os.kill(pids[1], signal.SIGKILL)
        job.wait(timeout=120)  # torchrun stops the surviving rank
        assert job.returncode != 0
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    logged_before = (output / "train_log.txt").read_text().count("epoch:")
    saved = [yaml.safe_load(meta.read_text())["epoch"] for meta in (output / "save").glob("CKPT*/CKPT.yaml")]
    assert saved and logged_before < EPOCHS

    run(command, tmp_path)  # the same command again
    log = (output / "train_log.txt").read_text().splitlines()
    epochs = [int(line.split("epoch: ")[1].split(",")[0]) for line in log if line.startswith("epoch:")]
    resumed = epochs[logged_before:]
    # Resumed after a saved epoch (the last complete one; a checkpoint the kill
    # left half-written is set aside), not from scratch; then epoch by epoch.
    assert resumed[0] >= 2 and resumed[0] - 1 in saved, (epochs, saved)
    assert resumed[0] >= max(saved), (epochs, saved)
    assert resumed == list(range(resumed[0], resumed[-1] + 1)), epochs
    for depth in ("N1", "N2"):
        assert len(scores(output / depth / "scores" / "eval.txt")) == 10


def test_refused_launch_fails_before_training(la_data, tiny_ssl, tmp_path):
    """A real torchrun with nccl on a machine without GPUs: a clear error, no training."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has GPUs: nccl is a valid choice here")
    output = tmp_path / "run"
    command = torchrun_command(
        "ASVspoof2019", "ffn.yaml", *smoke_overrides(la_data, tiny_ssl, output), "--distributed_backend=nccl"
    )
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "--distributed_backend=nccl needs GPUs" in result.stdout + result.stderr
    assert not list((output / "save").glob("CKPT*"))  # no training happened


def test_sweep_trains_each_setting_on_two_processes(la_data, tiny_ssl, tmp_path):
    """A multi-depth sweep setting on two ranks: one run, a result per depth."""
    root = tmp_path / "sweep"
    args = [
        sys.executable, "-m", "lobes.sweep", "--recipe", "ASVspoof2019", "--ssl", tiny_ssl,
        "--n_layers", "1", "2", "--multi_depth", "--nproc_per_node", "2", "--root", str(root), "--",
        f"--data_folder={la_data}", "--number_of_epochs=1", "--batch_size=4", "--max_samples=16000",
        "--num_workers=0", *DDP,
    ]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[1/1]" in result.stdout  # both depths in one run
    (run,) = (root / "ASVspoof2019").glob("*/ffn/N1-2/seed1")
    for depth in ("N1", "N2"):
        assert len(scores(run / depth / "scores" / "eval.txt")) == 10
    records = load_results(str(root))
    assert sorted(r["n_layers"] for r in records) == [1, 2]
    assert all(len(r["layer_weights"]) == r["n_layers"] for r in records)
    assert (run / "train_ids" / "epoch1_rank1.txt").is_file()  # it ran on two ranks
    again = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert "(done)" in again.stdout  # resumable: a finished setting is skipped


def test_sweep_refuses_multi_node_without_rendezvous(tiny_ssl):
    result = subprocess.run(
        [sys.executable, "-m", "lobes.sweep", "--recipe", "ASVspoof2019", "--ssl", tiny_ssl,
         "--n_layers", "1", "--nproc_per_node", "2", "--nnodes", "2", "--dry_run"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "--nnodes > 1 needs --node_rank and --rdzv_endpoint" in result.stderr
