"""Recipes under torchrun (two CPU processes, gloo): sharded training and
scoring, every trial scored once, the same scores as one process, resuming
after a kill, and clear errors for launches that cannot work."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, smoke_overrides

from lobes.dataio.batching import SortedBatchSampler
from lobes.evaluation.scores import read_scores
from lobes.training.distributed import _interleave_unique, check_launch, check_split_sizes

sys.path.insert(0, os.path.join(REPO, "recipes", "PartialSpoof"))
from synthetic_partialspoof import make_partialspoof_tree  # noqa: E402
from test_crossdataset import build_itw  # noqa: E402

DDP = ("--distributed_backend=gloo", "--device=cpu", "--log_train_ids=True")
pytestmark = [pytest.mark.torchrun, pytest.mark.slow]


def torchrun_command(dataset, hparams, *overrides, nproc=2, script="train.py"):
    recipe = os.path.join(REPO, "recipes", dataset)
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        os.path.join(recipe, script), os.path.join(recipe, "hparams", hparams), *overrides,
    ]


def run(command, cwd, timeout=600):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited with {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result.stdout + result.stderr


def scores(path):
    records = read_scores(path)
    ids = [r.utt_id for r in records]
    assert len(ids) == len(set(ids)), f"{path}: a trial scored twice"
    return {r.utt_id: r.score for r in records}


def assert_disjoint_train_ids(output, n_train):
    """The two ranks trained on disjoint trials that together cover the set
    (SpeechBrain's DistributedSampler pads at most one repeated trial a rank)."""
    for epoch_file in sorted((output / "train_ids").glob("epoch*_rank0.txt")):
        rank0 = epoch_file.read_text().split()
        rank1 = (output / "train_ids" / epoch_file.name.replace("rank0", "rank1")).read_text().split()
        assert rank0 and rank1
        overlap = set(rank0) & set(rank1)
        assert len(overlap) <= 1, f"{epoch_file.name}: both ranks trained on {sorted(overlap)}"
        assert len(set(rank0) | set(rank1)) == n_train


def rescore_single_process(dataset, hparams, output, cwd, *overrides):
    """The finished run rescored by one process from the same checkpoint."""
    recipe = os.path.join(REPO, "recipes", dataset)
    command = [sys.executable, os.path.join(recipe, "train.py"), os.path.join(recipe, "hparams", hparams)]
    run([*command, *overrides, "--device=cpu"], cwd)


def test_asvspoof2019_two_processes(la_data, tiny_ssl, tmp_path):
    output = tmp_path / "run"
    overrides = smoke_overrides(la_data, tiny_ssl, output, "--number_of_epochs=2")
    log = run(torchrun_command("ASVspoof2019", "ffn.yaml", *overrides, *DDP), tmp_path)
    assert log.count("== eval: 10 trials") == 1  # rank 0 alone reports and writes
    two = scores(output / "scores" / "eval.txt")
    assert len(two) == 10
    results = json.loads((output / "results.json").read_text())
    assert results["test_sets"]["eval"]["n_trials"] == 10
    assert_disjoint_train_ids(output, n_train=12)
    assert sorted(os.listdir(output / "train_ids")) == [
        f"epoch{e}_rank{r}.txt" for e in (1, 2) for r in (0, 1)
    ]

    rescore_single_process("ASVspoof2019", "ffn.yaml", output, tmp_path, *overrides)
    one = scores(output / "scores" / "eval.txt")
    assert one.keys() == two.keys()
    assert max(abs(one[k] - two[k]) for k in one) <= 1e-5

    # Cross-dataset scoring (evaluate.py) on two processes: In-the-Wild, 4 trials.
    itw = build_itw(tmp_path / "itw")
    run(torchrun_command("ASVspoof2019", str(output / "hyperparams.yaml"), f"--itw_folder={itw}",
                         *DDP[:2], script="evaluate.py"), tmp_path)
    assert len(scores(output / "scores" / "itw.txt")) == 4
    assert json.loads((output / "results.json").read_text())["test_sets"]["itw"]["n_trials"] == 4


def test_hub_id_ssl_two_processes_offline(la_data, hub_ssl_cache, tmp_path, monkeypatch):
    """ssl_source as users write it, a hub id, under torchrun: every rank loads
    it from the hub cache (offline here); the run folder then loads by that id."""
    import huggingface_hub.constants
    from conftest import HUB_SSL_ID

    from lobes.inference.detector import SpoofDetector

    output = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_ssl_cache)}
    command = torchrun_command("ASVspoof2019", "ffn.yaml", *smoke_overrides(
        la_data, HUB_SSL_ID, output, "--number_of_epochs=1"), *DDP)
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-6000:]
    two = scores(output / "scores" / "eval.txt")
    assert len(two) == 10
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_ssl_cache))
    detector = SpoofDetector.from_output_folder(output)
    assert detector.model_spec.ssl_source == HUB_SSL_ID
    (utt_id, score), *_ = sorted(two.items())
    flac = la_data / "LA" / "ASVspoof2019_LA_eval" / "flac" / f"{utt_id}.flac"
    assert detector.score_file(flac).score == pytest.approx(score, abs=1e-4)


def test_fine_tuning_two_processes(la_data, tiny_models, tmp_path):
    """A fine-tuned encoder (aasist_rawboost.yaml) trains under torchrun in a
    DDP wrapper of its own. It used to fail at the second step: SpecAugment's
    mask embedding and a large model's final LayerNorm got no gradient."""
    import torch

    output = tmp_path / "run"
    large = tiny_models[("wavlm", True)]  # stable layer norm: the final LayerNorm is there
    overrides = smoke_overrides(la_data, large, output, "--number_of_epochs=2")
    log = run(torchrun_command("ASVspoof2019", "aasist_rawboost.yaml", *overrides, *DDP), tmp_path)
    assert log.count("== eval: 10 trials") == 1
    assert len(scores(output / "scores" / "eval.txt")) == 10
    checkpoints = sorted((output / "save").glob("CKPT*/ssl.ckpt"))
    assert checkpoints
    for checkpoint in checkpoints:  # the fine-tuned encoder is saved
        saved = torch.load(checkpoint, weights_only=True)
        assert any(key.startswith("encoder.model.encoder.layers.") for key in saved)


def test_branched_run_two_processes(la_data, tiny_ssl, tmp_path):
    """Every branch has its own DDP wrapper; all score the same as one process."""
    output = tmp_path / "run"
    overrides = smoke_overrides(la_data, tiny_ssl, output, "--number_of_epochs=2", "--heads=[ffn, aasist]",
                                "--init_seeds=[3]", n_layers="[1, 2]")
    run(torchrun_command("ASVspoof2019", "ffn.yaml", *overrides, *DDP), tmp_path)
    branches = [f"{h}/N{n}/seed3" for h in ("ffn", "aasist") for n in (1, 2)]
    two = {b: scores(output / b / "scores" / "eval.txt") for b in branches}
    assert all(len(v) == 10 for v in two.values())
    rescore_single_process("ASVspoof2019", "ffn.yaml", output, tmp_path, *overrides)
    for branch in branches:
        one = scores(output / branch / "scores" / "eval.txt")
        assert max(abs(one[k] - two[branch][k]) for k in one) <= 1e-5, branch


@pytest.fixture(scope="module")
def ps_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ps_ddp")
    make_partialspoof_tree(folder, {"train": (3, 5), "dev": (2, 3), "eval": (2, 3)}, seconds=(0.4, 1.6), seed=1)
    return folder


def test_partialspoof_segments_two_processes(ps_data, tiny_ssl, tmp_path):
    """Length-sorted batches sharded by rank; utterance and segment score
    files hold every trial once and equal one process's."""
    output = tmp_path / "seg"
    overrides = (
        f"--data_folder={ps_data}", f"--output_folder={output}", f"--ssl_source={tiny_ssl}",
        "--n_layers=2", "--batch_size=2", "--num_workers=0", "--number_of_epochs=1",
    )
    run(torchrun_command("PartialSpoof", "segment.yaml", *overrides, *DDP), tmp_path)
    assert_disjoint_train_ids(output, n_train=8)
    two = {name: scores(output / "scores" / f"{name}.txt") for name in ("dev", "eval")}
    assert len(two["dev"]) == 5 and len(two["eval"]) == 5
    segments_two = (output / "scores" / "eval_segments_160ms.txt").read_text().splitlines()
    results = json.loads((output / "results.json").read_text())
    assert set(results["test_sets"]) == {"dev", "eval"}

    rescore_single_process("PartialSpoof", "segment.yaml", output, tmp_path, *overrides)
    for name in ("dev", "eval"):
        one = scores(output / "scores" / f"{name}.txt")
        assert one.keys() == two[name].keys()
        assert max(abs(one[k] - two[name][k]) for k in one) <= 1e-5
    segments_one = (output / "scores" / "eval_segments_160ms.txt").read_text().splitlines()
    assert sorted(line.split()[:2] for line in segments_one) == sorted(line.split()[:2] for line in segments_two)


@pytest.mark.parametrize("n_items, batch_size, padded_batches", [(23, 4, 0), (23, 5, 1)])
def test_sorted_batches_are_sharded_disjointly(n_items, batch_size, padded_batches):
    lengths = [float(i % 7) for i in range(n_items)]
    shards = [SortedBatchSampler(lengths, batch_size, seed=5).shard(rank, 3) for rank in range(3)]
    for epoch in (0, 1):
        for shard in shards:
            shard.set_epoch(epoch)
        batches = [list(shard) for shard in shards]
        assert len({len(b) for b in batches}) == 1  # every rank as many batches
        flat = [tuple(batch) for rank_batches in batches for batch in rank_batches]
        assert {i for batch in flat for i in batch} == set(range(n_items))
        assert len(flat) - len(set(flat)) == padded_batches
    again = SortedBatchSampler(lengths, batch_size, seed=5).shard(1, 3)
    again.set_epoch(1)
    assert list(again) == batches[1]  # reproducible per epoch (resuming keeps the order)


def test_gathered_records_keep_dataset_order_and_drop_padding():
    # DistributedSampler(shuffle=False) over 5 trials and 2 ranks: [0, 2, 4], [1, 3, 0].
    assert _interleave_unique([[0, 2, 4], [1, 3, 0]], key=lambda x: x) == [0, 1, 2, 3, 4]


@pytest.fixture
def launched(monkeypatch):
    def launch(world_size, local_world_size=None):
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("LOCAL_RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", str(world_size))
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world_size or world_size))
    return launch


def test_nccl_without_gpu_is_refused(launched):
    launched(2)
    with pytest.raises(ValueError, match="--distributed_backend=nccl needs GPUs"):
        check_launch({"distributed_backend": "nccl", "device": "cuda:0"})
    with pytest.raises(ValueError, match="--distributed_backend=mpi: use one of"):
        check_launch({"distributed_backend": "mpi", "device": "cpu"})


def test_more_ranks_than_gpus_is_refused(launched, monkeypatch):
    import torch

    launched(4)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match="--nproc_per_node=4 ranks on this node but only 2 GPU"):
        check_launch({"distributed_backend": "nccl", "device": "cuda:0"})


def test_world_larger_than_a_split_is_refused(launched):
    launched(4)
    with pytest.raises(ValueError, match="split 'eval' holds 3 trials, fewer than the 4 ranks"):
        check_split_sizes({"train": list(range(10)), "eval": [1, 2, 3]})


def test_half_written_checkpoints_are_set_aside(tmp_path):
    """A kill while saving leaves a checkpoint with a missing or truncated
    parameter file; resuming skips it instead of failing to load it."""
    import torch
    from speechbrain.utils.checkpoints import Checkpointer

    from lobes.utils.run_folder import discard_incomplete_checkpoints

    model = torch.nn.Linear(2, 2)
    checkpointer = Checkpointer(tmp_path / "save", recoverables={"model": model})
    good = checkpointer.save_checkpoint(meta={"epoch": 1})
    truncated = checkpointer.save_checkpoint(meta={"epoch": 2})
    data = (truncated.path / "model.ckpt").read_bytes()
    (truncated.path / "model.ckpt").write_bytes(data[: len(data) // 2])
    optimizer = torch.optim.Adam(model.parameters())
    checkpointer.add_recoverable("optimizer", optimizer)
    torch.save(optimizer.state_dict(), good.path / "optimizer.ckpt")
    missing = checkpointer.save_checkpoint(meta={"epoch": 3})
    (missing.path / "optimizer.ckpt").unlink()

    discard_incomplete_checkpoints(checkpointer)
    assert [c.meta["epoch"] for c in checkpointer.list_checkpoints()] == [1]
    assert sorted(p.name for p in (tmp_path / "save").glob("incomplete-CKPT*")) == sorted(
        "incomplete-" + c.path.name for c in (truncated, missing)
    )
    assert checkpointer.recover_if_possible().meta["epoch"] == 1
