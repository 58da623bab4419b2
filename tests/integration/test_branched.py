"""Branched runs: every (head, depth, seed) on one encoder pass, each branch
as if trained alone; bad configurations refused."""

import copy
import json
import os

import pytest
import torch
from test_multidepth import load_hparams, prepare_asvspoof2019, train_and_score

from lobes.evaluation.scores import read_scores
from lobes.models.branches import plan_branches
from lobes.testing.synthetic import make_synthetic_la

BRANCHED = {"n_layers": [1, 3], "heads": ["ffn", "aasist"], "init_seeds": [1, 5]}


def no_dropout(module):
    """Dropout off: its random draws come from one stream shared by all
    branches, so they differ from a run of its own (README)."""
    for sub in module.modules():
        if isinstance(sub, torch.nn.Dropout):
            sub.p = 0.0


def test_each_branch_matches_its_own_single_run(tmp_path, tiny_ssl):
    counts = {"train": 6, "dev": 4, "eval": 4}
    make_synthetic_la(tmp_path, counts, counts, seconds=(0.6, 1.1), seed=7)
    prepare_asvspoof2019(str(tmp_path), str(tmp_path / "manifests"))

    hparams = load_hparams(tmp_path / "branched", tmp_path, tiny_ssl, BRANCHED["n_layers"],
                           heads=BRANCHED["heads"], init_seeds=BRANCHED["init_seeds"], patience=1)
    names = list(hparams["ssl"].fusions)
    assert len(names) == 8 and "aasist/N3/seed5" in names
    # Seeds set the initialisation: same seed, same head -> same start.
    ffn1, ffn5 = (hparams["head"][f"ffn/N1/seed{s}"].state_dict() for s in (1, 5))
    assert not torch.equal(ffn1["classifier.3.weight"], ffn5["classifier.3.weight"])
    torch.testing.assert_close(hparams["head"]["ffn/N1/seed1"].frame_mlp[0].weight,
                               hparams["head"]["ffn/N3/seed1"].frame_mlp[0].weight)
    no_dropout(hparams["head"])
    init = {name: (copy.deepcopy(hparams["ssl"].fusions[name].state_dict()),
                   copy.deepcopy(hparams["head"][name].state_dict())) for name in names}
    brain = train_and_score(hparams)
    assert brain.compute_seconds["heads"] > 0

    for name in ("ffn/N1/seed1", "aasist/N3/seed5", "ffn/N3/seed5"):
        head, depth, seed = name.split("/")
        single = load_hparams(tmp_path / name.replace("/", "_"), tmp_path, tiny_ssl, int(depth[1:]),
                              yaml=f"{head}.yaml", patience=1)  # seed 1: the run's batch order
        no_dropout(single["head"])
        train_and_score(single, init[name])
        ours = read_scores(tmp_path / "branched" / name / "scores" / "eval.txt")
        theirs = read_scores(tmp_path / name.replace("/", "_") / "scores" / "eval.txt")
        assert [r.utt_id for r in ours] == [r.utt_id for r in theirs]
        for a, b in zip(ours, theirs):
            assert a.score == pytest.approx(b.score, abs=1e-5), name
        results = json.loads((tmp_path / "branched" / name / "results.json").read_text())
        assert results["config"]["head_type"] == head and results["config"]["n_layers"] == int(depth[1:])
        assert results["config"]["seed"] == int(seed[4:])
        assert "batch order" in results["config"]["branched_run"]["semantics"]
        single_results = json.loads((tmp_path / name.replace("/", "_") / "results.json").read_text())
        assert results["selected_checkpoint"]["epoch"] == single_results["selected_checkpoint"]["epoch"]

    # Same folder, other branches: refused before training.
    with pytest.raises(ValueError, match="other branches|another configuration"):
        other = load_hparams(tmp_path / "branched", tmp_path, tiny_ssl, [1], heads=["ffn"], init_seeds=[1])
        train_and_score(other)


@pytest.mark.parametrize("options, message", [
    ({"heads": []}, "heads is an empty list"),
    ({"init_seeds": [1, 1]}, r"init_seeds=\[1, 1\] lists \[1\] more than once"),
    ({"heads": ["ffn", "lstm"]}, "unknown head 'lstm'"),
    ({"n_layers": [2, 2], "heads": ["ffn"]}, "n_layers=.* more than once"),
])
def test_bad_branch_lists_are_refused(options, message):
    args = {"n_layers": 2, "head_class": "ffn", "seed": 1, **options}
    with pytest.raises(ValueError, match=message):
        plan_branches(**args)


def test_stopped_branches_are_neither_run_nor_updated(tmp_path, tiny_ssl):
    counts = {"train": 4, "dev": 3, "eval": 3}
    make_synthetic_la(tmp_path, counts, counts, seconds=(0.6, 0.8), seed=3)
    prepare_asvspoof2019(str(tmp_path), str(tmp_path / "manifests"))
    hparams = load_hparams(tmp_path / "out", tmp_path, tiny_ssl, [1, 2], heads=["ffn"], init_seeds=[1, 2])
    import speechbrain as sb

    from lobes.dataio.dataset import make_datasets
    from lobes.training.brain import SpoofBrain
    from lobes.training.branched import brain_class_for
    with pytest.raises(TypeError, match=r"the YAML plans 4 branches .*brain_class_for\(SpoofBrain, hparams\)"):
        SpoofBrain(modules=hparams["modules"], hparams=hparams, run_opts={"device": "cpu"})
    brain = brain_class_for(SpoofBrain, hparams)(
        modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
        checkpointer=hparams["checkpointer"], run_opts={"device": "cpu"},
    )
    assert type(brain).__name__ == "BranchedSpoofBrain"
    brain.states["ffn/N2/seed2"].stopper.should_stop = True
    frozen = copy.deepcopy(hparams["head"]["ffn/N2/seed2"].state_dict())
    brain.fit(brain.hparams.epoch_counter, make_datasets(hparams)["train"],
              train_loader_kwargs=hparams["train_dataloader_opts"])
    assert brain.active_branches(sb.Stage.TRAIN) == ["ffn/N1/seed1", "ffn/N1/seed2", "ffn/N2/seed1"]
    for key, value in hparams["head"]["ffn/N2/seed2"].state_dict().items():
        assert torch.equal(value, frozen[key]), key
    assert not torch.equal(hparams["head"]["ffn/N2/seed1"].frame_mlp[0].weight,
                           frozen["frame_mlp.0.weight"])
    assert os.path.isfile(tmp_path / "out" / "branches.json")


def test_a_branch_folder_scores_like_the_run(tmp_path, tiny_ssl, run_recipe):
    from conftest import smoke_overrides

    from lobes.inference.detector import SpoofDetector

    counts = {"train": 4, "dev": 3, "eval": 3}
    make_synthetic_la(tmp_path / "la", counts, counts, seconds=(0.6, 0.9), seed=2)
    output = tmp_path / "run"
    run_recipe("ASVspoof2019", "ffn.yaml", tmp_path, *smoke_overrides(
        tmp_path / "la", tiny_ssl, output, "--number_of_epochs=1", "--heads=[ffn, aasist]",
        "--init_seeds=[3]", n_layers="[1, 2]"))
    branch = output / "aasist" / "N1" / "seed3"
    detector = SpoofDetector.from_output_folder(branch)
    assert len(detector.mods.ssl.layer_weights()) == 1
    assert len(detector.mods.ssl.encoder.model.encoder.layers) == 1  # built at the branch depth
    expected = {r.utt_id: r.score for r in read_scores(branch / "scores" / "eval.txt")}
    flac = tmp_path / "la" / "LA" / "ASVspoof2019_LA_eval" / "flac"
    for utt_id, score in expected.items():
        assert detector.score_file(flac / f"{utt_id}.flac").score == pytest.approx(score, abs=1e-4)
    results = json.loads((branch / "results.json").read_text())
    assert results["config"]["head_type"] == "aasist" and "pooling" not in results["config"]
    with pytest.raises(ValueError, match=r"several branches \(\['ffn/N1/seed3', .*load one of its"):
        SpoofDetector.from_output_folder(output)  # the run folder itself: which branch?


def test_a_brain_with_its_own_step_trains_single_runs_only(tmp_path, tiny_ssl):
    """A recipe Brain may override compute_forward, as in SpeechBrain; a plan
    of several branches, which trains with its own step, is then refused."""
    from lobes.training.brain import SpoofBrain
    from lobes.training.branched import brain_class_for

    class OwnForward(SpoofBrain):
        def compute_forward(self, batch, stage):
            return super().compute_forward(batch, stage)

    single = load_hparams(tmp_path / "single", tmp_path, tiny_ssl, 2)
    assert brain_class_for(OwnForward, single) is OwnForward
    several = load_hparams(tmp_path / "several", tmp_path, tiny_ssl, [1, 2], heads=["ffn"], init_seeds=[1])
    with pytest.raises(TypeError, match=r"OwnForward overrides compute_forward, the step of one model; "
                                        r"the YAML plans 2 branches"):
        brain_class_for(OwnForward, several)
