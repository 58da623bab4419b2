"""Bootstrap intervals, paired tests and their command lines (lobes.evaluation.bootstrap,
lobes.stats, lobes.compare).

The statistical tests simulate bona fide ~ N(d, 1) and spoof ~ N(0, 1), whose
true EER is Phi(-d/2). To stay fast they use fewer replicates than the
default 1,000 (400 for the coverage, 200 for the paired tests): percentile
intervals need a few hundred replicates to settle.
"""

import json
import math

import numpy as np
import pytest

from lobes.evaluation.bootstrap import (
    metric_intervals,
    paired_comparison,
    record_intervals,
    replicate_values,
    set_intervals,
    weighted_metrics,
)
from lobes.evaluation.compare import main as compare_main
from lobes.evaluation.metrics import compute_eer, detection_metrics
from lobes.evaluation.score_stats import main as stats_main
from lobes.evaluation.scores import ScoreRecord


def gaussian_set(rng, d, n_bonafide, n_spoof):
    scores = np.concatenate([rng.normal(d, 1, n_bonafide), rng.normal(0, 1, n_spoof)])
    return scores, np.arange(scores.size) < n_bonafide


def true_eer(d):
    return 100 * 0.5 * math.erfc(d / 2 / math.sqrt(2))  # Phi(-d/2), in %


# ---------------------------------------------------------------------------
# The weighted metrics are lobes.evaluation.metrics' metrics.


@pytest.mark.parametrize("block_size", [None, 1, 5, 64])
def test_unit_weights_give_compute_eer_exactly(block_size):
    rng = np.random.default_rng(0)
    for _ in range(40):
        n_b, n_s = rng.integers(1, 80, size=2)
        # Rounded scores: many ties, within and across classes.
        scores = np.round(rng.normal(0, 2, n_b + n_s)) + np.r_[np.full(n_b, 0.7), np.zeros(n_s)]
        labels = np.arange(n_b + n_s) < n_b
        out = weighted_metrics(scores, labels, np.ones((1, labels.size)), block_size=block_size)
        assert out["eer"][0] == 100 * compute_eer(scores[labels], scores[~labels])[0]
        plain = detection_metrics(scores[labels], scores[~labels])
        for metric in ("eer", "min_dcf", "act_dcf"):
            assert out[metric][0] == plain[metric]
        assert out["cllr"][0] == pytest.approx(plain["cllr"], rel=1e-12)


def test_integer_weights_are_repeated_trials():
    rng = np.random.default_rng(1)
    for _ in range(30):
        n_b, n_s = rng.integers(2, 50, size=2)
        scores = np.round(rng.normal(0, 3, n_b + n_s)) / 2
        labels = np.arange(n_b + n_s) < n_b
        weights = rng.integers(0, 4, size=(4, labels.size))
        out = weighted_metrics(scores, labels, weights, block_size=int(rng.integers(1, 20)))
        for r in range(4):
            kept, kept_labels = np.repeat(scores, weights[r]), np.repeat(labels, weights[r])
            if kept_labels.all() or not kept_labels.any():
                assert np.isnan(out["eer"][r])
                continue
            plain = detection_metrics(kept[kept_labels], kept[~kept_labels])
            for metric in ("eer", "min_dcf", "act_dcf"):
                assert out[metric][r] == plain[metric], metric


def test_replicates_are_reproducible_and_seeded():
    scores, labels = gaussian_set(np.random.default_rng(2), 2.0, 200, 300)
    first = replicate_values(scores, labels, replicates=50, seed=3)
    again = replicate_values(scores, labels, replicates=50, seed=3)
    other = replicate_values(scores, labels, replicates=50, seed=4)
    for metric in first:
        np.testing.assert_array_equal(first[metric], again[metric])
    assert not np.array_equal(first["eer"], other["eer"])


# ---------------------------------------------------------------------------
# Coverage and paired tests on Gaussian scores with a known answer.


def test_interval_covers_the_true_eer_95_percent_of_the_time():
    rng = np.random.default_rng(10)
    d, truth, covered, n_sets = 2.0, true_eer(2.0), 0, 200
    for _ in range(n_sets):
        scores, labels = gaussian_set(rng, d, 250, 250)
        interval = metric_intervals(scores, labels, replicates=400, seed=int(rng.integers(1 << 30)),
                                    metrics=("eer",))["eer"]
        covered += interval["low"] <= truth <= interval["high"]
    assert 0.90 <= covered / n_sets <= 0.99, covered


def test_speaker_bootstrap_covers_where_the_trial_bootstrap_does_not():
    """Scores shifted per speaker: trials of a speaker are correlated; only
    resampling whole speakers keeps the interval honest."""
    rng = np.random.default_rng(11)
    n_speakers, per_class, d, n_sets = 30, 10, 2.0, 200
    speaker = np.repeat(np.arange(n_speakers), 2 * per_class)
    labels = np.tile(np.arange(2 * per_class) < per_class, n_speakers)
    # Total variance 1 + 0.5: the truth is Phi(-d / (2 sqrt(1.5))).
    truth = 100 * 0.5 * math.erfc(d / 2 / math.sqrt(1.5) / math.sqrt(2))
    covered = {"speaker": 0, "trial": 0}
    for _ in range(n_sets):
        shift = rng.normal(0, math.sqrt(0.5), n_speakers)[speaker]
        scores = np.where(labels, d, 0.0) + shift + rng.normal(0, 1, labels.size)
        seed = int(rng.integers(1 << 30))
        for unit, clusters in (("speaker", speaker), ("trial", None)):
            interval = metric_intervals(scores, labels, clusters, replicates=400, seed=seed,
                                        metrics=("eer",))["eer"]
            covered[unit] += interval["low"] <= truth <= interval["high"]
    assert 0.90 <= covered["speaker"] / n_sets <= 0.99, covered
    assert covered["trial"] < covered["speaker"], covered


def test_paired_test_holds_its_level_and_finds_a_clear_difference():
    rng = np.random.default_rng(12)
    n = 300
    labels = np.arange(2 * n) < n
    rejected_null = rejected_clear = 0
    n_sets = 200
    for k in range(n_sets):
        # Two systems that share the trials' latent score, with their own noise.
        latent = np.where(labels, 2.0, 0.0) + rng.normal(0, 1, 2 * n)
        a = latent + rng.normal(0, 0.5, 2 * n)
        b = latent + rng.normal(0, 0.5, 2 * n)
        rejected_null += paired_comparison(a, b, labels, replicates=200, seed=k)["p_value"] < 0.05
        if k < 40:
            better = latent + np.where(labels, 1.0, 0.0) + rng.normal(0, 0.5, 2 * n)
            rejected_clear += paired_comparison(a, better, labels, replicates=200, seed=k)["p_value"] < 0.05
    assert rejected_null / n_sets <= 0.10, rejected_null
    assert rejected_clear / 40 >= 0.9, rejected_clear


def test_non_inferiority_verdict():
    rng = np.random.default_rng(13)
    labels = np.arange(1000) < 500
    a = np.where(labels, 2.0, 0.0) + rng.normal(0, 1, 1000)
    worse = a - np.where(labels, 1.0, 0.0)  # bona fide pushed down: EER clearly up
    same = paired_comparison(a, a + rng.normal(0, 0.05, 1000), labels, margin=2.0, replicates=300)
    assert same["non_inferior"] is True and same["interval"]["high"] < 2.0
    out = paired_comparison(a, worse, labels, margin=2.0, replicates=300)
    assert out["difference"] > 5 and out["non_inferior"] is False
    assert out["interval"]["low"] > 0 and out["p_value"] < 0.01


def test_paired_speaker_bootstrap_shares_the_draws():
    rng = np.random.default_rng(14)
    labels = np.arange(400) < 200
    speakers = rng.integers(0, 25, 400)
    a = np.where(labels, 2.0, 0.0) + rng.normal(0, 1, 400)
    out = paired_comparison(a, a.copy(), labels, clusters=speakers, replicates=100)
    # The same draws for both: the difference of identical systems is exactly 0.
    assert out["unit"] == "cluster" and out["interval"] == {"low": 0.0, "high": 0.0}


# ---------------------------------------------------------------------------
# Too little data: a reason, never a number.


def test_too_few_trials_or_clusters_give_a_reason():
    scores, labels = gaussian_set(np.random.default_rng(5), 2.0, 9, 50)
    out = metric_intervals(scores, labels)
    assert set(out) == {"eer", "min_dcf", "act_dcf", "cllr"}
    assert all("9 bona fide and 50 spoof" in iv["unavailable"] for iv in out.values())
    scores, labels = gaussian_set(np.random.default_rng(5), 2.0, 50, 50)
    out = metric_intervals(scores, labels, clusters=[i % 2 for i in range(100)])
    assert "too few clusters" in out["eer"]["unavailable"]
    # Speakers holding one class only: most replicates lack a class.
    out = metric_intervals(scores, labels, clusters=np.where(labels, 0, np.arange(100) % 3 + 1))
    assert "replicates drew no trial of a class" in out["eer"]["unavailable"]


def test_set_intervals_per_attack():
    rng = np.random.default_rng(6)
    scores, labels = gaussian_set(rng, 2.0, 100, 200)
    attacks = np.where(labels, "-", np.where(np.arange(300) % 40 == 0, "A02", "A01"))
    out = set_intervals(scores, labels, attacks, replicates=100)
    assert set(out) == {"pooled", "A01", "A02"}
    assert "low" in out["A01"]["eer"] and "too few" in out["A02"]["eer"]["unavailable"]


def test_record_intervals_unit_and_calibrated():
    rng = np.random.default_rng(7)
    scores, labels = gaussian_set(rng, 2.0, 60, 60)
    records = [ScoreRecord(f"u{i}", "-" if b else "A01", "bonafide" if b else "spoof", float(s))
               for i, (s, b) in enumerate(zip(scores, labels))]
    speakers = {r.utt_id: f"S{i % 12}" for i, r in enumerate(records)}
    out = record_intervals(records, speakers, {"a": 0.5, "b": 1.0}, replicates=100)
    assert out["unit"] == "speaker" and out["n_clusters"] == 12 and "unit_note" not in out
    assert set(out["calibrated"]["pooled"]) == {"act_dcf", "cllr"}
    del speakers["u3"]
    out = record_intervals(records, speakers, replicates=100)
    assert out["unit"] == "trial" and "u3" in out["unit_note"]


# ---------------------------------------------------------------------------
# Command lines.


def write_scores_file(path, scores, labels, ids=None):
    ids = ids or [f"u{i}" for i in range(len(scores))]
    path.write_text("".join(
        f"{u} {'-' if b else 'A01'} {'bonafide' if b else 'spoof'} {s:.6f}\n"
        for u, s, b in zip(ids, scores, labels)
    ))
    return path


@pytest.mark.parametrize("content, message", [
    ("a - bonafide 1\nb A01 spoof 0\na A01 spoof 2\n", "bad.txt:3: trial 'a' already scored on line 1"),
    ("a - bonafide 1\nb A01 fake 0\n", "bad.txt:2: key 'fake' is neither"),
    ("a - bonafide 1\nb A01 spoof inf\n", "bad.txt:2: score 'inf' is not a finite number"),
    ("a - bonafide 1\nb - bonafide 0\n", "bad.txt: no spoof trials"),
    ("a - bonafide\n", "bad.txt:1: expected 'UTT_ID ATTACK KEY SCORE'"),
])
def test_stats_refuses_bad_score_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(SystemExit) as err:
        stats_main([str(path)])
    assert message in str(err.value)


def test_stats_prints_intervals_and_json_lines(tmp_path, capsys):
    rng = np.random.default_rng(8)
    scores, labels = gaussian_set(rng, 2.0, 80, 120)
    a = write_scores_file(tmp_path / "a.txt", scores, labels)
    b = write_scores_file(tmp_path / "b.txt", scores[75:85], labels[75:85])
    stats_main([str(a), str(b), "--replicates", "100"])
    text = capsys.readouterr().out
    assert "200 trials (80 bona fide, 120 spoof)" in text and "EER (%)" in text
    assert "(no interval: too few trials for an interval: 5 bona fide and 5 spoof" in text
    stats_main([str(a), "--json", "--replicates", "100"])
    (line,) = capsys.readouterr().out.splitlines()
    stats = json.loads(line)
    assert stats["metrics"]["eer"] == detection_metrics(scores[labels], scores[~labels])["eer"]
    assert stats["intervals"]["pooled"]["eer"]["low"] <= stats["metrics"]["eer"]


def test_compare_files_runs_and_refusals(tmp_path, capsys):
    rng = np.random.default_rng(9)
    scores, labels = gaussian_set(rng, 2.0, 100, 100)
    a = write_scores_file(tmp_path / "a.txt", scores, labels)
    b = write_scores_file(tmp_path / "b.txt", scores + np.where(labels, 1.5, 0.0), labels)
    compare_main([str(a), str(b), "--margin", "0.5", "--json", "--replicates", "200"])
    out = json.loads(capsys.readouterr().out)
    assert out["difference"] < 0 and out["non_inferior"] is True and out["p_value"] < 0.05
    # Run folders: scores/<set>.txt of every set but dev.
    for name, path in (("A", a), ("B", b)):
        folder = tmp_path / name / "scores"
        folder.mkdir(parents=True)
        (folder / "eval.txt").write_text(path.read_text())
        (folder / "dev.txt").write_text(path.read_text())
    compare_main([str(tmp_path / "A"), str(tmp_path / "B"), "--metric", "minDCF", "--replicates", "50"])
    text = capsys.readouterr().out
    assert "== eval:" in text and "== dev:" not in text and "minDCF" in text
    short = write_scores_file(tmp_path / "short.txt", scores[3:], labels[3:], [f"u{i}" for i in range(3, 200)])
    with pytest.raises(SystemExit) as err:
        compare_main([str(a), str(short)])
    assert "scored different trials: only in the first 3 (u0, u1, u2)" in str(err.value)
    with pytest.raises(SystemExit) as err:
        compare_main([str(a), str(b), "--metric", "AUC"])
    assert "unknown metric 'AUC'" in str(err.value)


@pytest.mark.parametrize("formulation", [2019, 2021])
def test_weighted_min_tdcf_at_unit_weights_is_min_tdcf(formulation):
    from lobes.evaluation.metrics import min_tdcf_2019, min_tdcf_2021, tandem_costs

    rng = np.random.default_rng(15)
    asv = {"target": rng.normal(3, 1, 200), "nontarget": rng.normal(-3, 1, 200), "spoof": rng.normal(1, 2, 200)}
    min_tdcf = min_tdcf_2019 if formulation == 2019 else min_tdcf_2021
    for _ in range(10):
        scores, labels = gaussian_set(rng, 1.5, int(rng.integers(5, 80)), int(rng.integers(5, 80)))
        scores = np.round(scores, 1)  # ties
        out = weighted_metrics(scores, labels, np.ones((1, labels.size)), tandem_costs(asv, formulation),
                               metrics=("min_dcf",))
        assert out["min_dcf"][0] == min_tdcf(scores[labels], scores[~labels], asv)
