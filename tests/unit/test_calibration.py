"""ASVspoof 5 costs (minDCF, actDCF, Cllr), breakdowns and score calibration."""

import json

import numpy as np
import pytest

from lobes.evaluation.calibration import (
    calibrated_test_outputs,
    fit_calibration,
    fit_logistic,
)
from lobes.evaluation.metrics import (
    CostModel,
    act_dcf,
    cllr,
    compute_eer,
    detection_metrics,
    metrics_by_group,
    min_dcf,
)
from lobes.evaluation.scores import ScoreRecord, read_scores, write_scores

BONAFIDE, SPOOF = [2, 1, 0.5, -1], [-2, -0.5, 0.8, -3]


def test_challenge_known_answer():
    assert compute_eer(BONAFIDE, SPOOF)[0] == pytest.approx(0.25)
    assert min_dcf(BONAFIDE, SPOOF) == pytest.approx(0.5)
    assert act_dcf(BONAFIDE, SPOOF) == pytest.approx(0.975)
    assert cllr(BONAFIDE, SPOOF) == pytest.approx(0.730044, abs=1e-6)
    assert detection_metrics(BONAFIDE, SPOOF) == pytest.approx(
        {"eer": 25.0, "min_dcf": 0.5, "act_dcf": 0.975, "cllr": 0.730044}, abs=1e-6
    )


def hand_dcf(bonafide, spoof, threshold, costs=CostModel()):
    """Written from the definition: cost of one threshold."""
    p_miss = sum(s < threshold for s in bonafide) / len(bonafide)
    p_fa = sum(s >= threshold for s in spoof) / len(spoof)
    num = costs.c_miss * (1 - costs.p_spoof) * p_miss + costs.c_fa * costs.p_spoof * p_fa
    return num / min(costs.c_miss * (1 - costs.p_spoof), costs.c_fa * costs.p_spoof)


def test_dcf_agrees_with_brute_force():
    rng = np.random.default_rng(0)
    bonafide, spoof = rng.normal(1, 1, 40).round(1), rng.normal(-1, 1.5, 70).round(1)
    candidates = np.concatenate([bonafide, spoof, [np.inf, -np.inf]])
    assert min_dcf(bonafide, spoof) == pytest.approx(
        min(hand_dcf(bonafide, spoof, t) for t in candidates)
    )
    assert act_dcf(bonafide, spoof) == pytest.approx(hand_dcf(bonafide, spoof, -np.log(1.9)))
    # Cllr: a perfect, confident system costs nothing; always-zero LLRs cost 1 bit.
    assert cllr([50.0], [-50.0]) == pytest.approx(0.0, abs=1e-9)
    assert cllr([0.0, 0.0], [0.0]) == pytest.approx(1.0)


def test_breakdowns_by_attack_and_by_codec():
    scores = [3.0, 2.0, -1.0, -2.0, 2.5, -3.0]
    bonafide = [True, True, True, False, False, False]
    attacks = ["-", "-", "-", "A17", "A18", "A17"]
    by_attack = metrics_by_group(scores, bonafide, attacks)
    assert set(by_attack) == {"A17", "A18", "pooled"}
    assert by_attack["A17"]["eer"] == 0.0  # both A17 spoofs below every bona fide
    assert by_attack["A18"]["eer"] == pytest.approx(
        100 * compute_eer([3.0, 2.0, -1.0], [2.5])[0]
    )
    assert by_attack["pooled"] == detection_metrics([3.0, 2.0, -1.0], [-2.0, 2.5, -3.0])
    codecs = ["-", "C01", "C01", "-", "C01", "C02"]  # C02 has no bona fide trial
    by_codec = metrics_by_group(scores, bonafide, codecs, shared_bonafide=False)
    assert set(by_codec) == {"-", "C01", "pooled"}
    assert by_codec["C01"] == detection_metrics([2.0, -1.0], [2.5])


def gaussian_llrs(rng, n=20000):
    """Scores that are LLRs by construction: N(+-2, 2^2) gives LLR(x) = x."""
    return rng.normal(2, 2, n), rng.normal(-2, 2, n)


def records(bonafide, spoof):
    return [ScoreRecord(f"b{i}", "-", "bonafide", float(s)) for i, s in enumerate(bonafide)] + [
        ScoreRecord(f"s{i}", "A01", "spoof", float(s)) for i, s in enumerate(spoof)
    ]


def test_calibration_of_calibrated_llrs_is_near_identity():
    bonafide, spoof = gaussian_llrs(np.random.default_rng(1))
    calibration = fit_calibration(records(bonafide, spoof))
    assert calibration.a == pytest.approx(1.0, abs=0.05)
    assert calibration.b == pytest.approx(0.0, abs=0.05)


def test_calibration_lowers_cllr_and_keeps_eer_and_min_dcf():
    bonafide, spoof = gaussian_llrs(np.random.default_rng(2), 5000)
    raw_bonafide, raw_spoof = 8 * bonafide + 6, 8 * spoof + 6  # overconfident, shifted
    calibration = fit_calibration(records(raw_bonafide, raw_spoof))
    cal_bonafide, cal_spoof = calibration.apply(raw_bonafide), calibration.apply(raw_spoof)
    raw, cal = detection_metrics(raw_bonafide, raw_spoof), detection_metrics(cal_bonafide, cal_spoof)
    assert cal["cllr"] < raw["cllr"] - 0.5
    assert cal["act_dcf"] < raw["act_dcf"]
    assert cal["eer"] == pytest.approx(raw["eer"])
    assert cal["min_dcf"] == pytest.approx(raw["min_dcf"])
    assert calibration.a == pytest.approx(1 / 8, rel=0.1)


def test_calibration_prior_is_stated_and_used():
    bonafide, spoof = gaussian_llrs(np.random.default_rng(3), 3000)
    default = fit_calibration(records(bonafide, spoof))
    assert default.prior == pytest.approx(1.9 / 2.9)
    other = fit_calibration(records(bonafide, spoof), prior=0.1)
    assert other.prior == 0.1
    with pytest.raises(ValueError, match=r"a bona fide prior in \(0, 1\), got 1.0"):
        fit_calibration(records(bonafide, spoof), prior=1.0)
    with pytest.raises(ValueError, match="needs bona fide and spoof"):
        fit_logistic([[1.0], [2.0]], [True, True], 0.5)


def test_test_outputs_fit_on_dev_and_apply_to_other_sets(tmp_path):
    rng = np.random.default_rng(4)
    dev = records(*(10 * s for s in gaussian_llrs(rng, 500)))
    evaluation = records(*(10 * s for s in gaussian_llrs(rng, 300)))
    # Without dev scores nothing is calibrated, and the results say why.
    missing = calibrated_test_outputs(evaluation, str(tmp_path), "eval")
    assert missing["calibration"] is None and "no dev scores" in missing["calibration_note"]
    write_scores(tmp_path / "scores" / "dev.txt", dev)
    dev_entries = calibrated_test_outputs(dev, str(tmp_path), "dev")
    saved = json.loads((tmp_path / "calibration.json").read_text())
    assert saved["a"] == pytest.approx(0.1, rel=0.15) and saved["fitted_on"] == "scores/dev.txt"
    assert dev_entries["calibrated"]["cllr"] < detection_metrics(
        [r.score for r in dev if r.key == "bonafide"], [r.score for r in dev if r.key == "spoof"]
    )["cllr"]
    entries = calibrated_test_outputs(evaluation, str(tmp_path), "eval")
    written = read_scores(tmp_path / "scores" / "eval.calibrated.txt")
    assert [r.utt_id for r in written] == [r.utt_id for r in evaluation]
    assert written[0].score == pytest.approx(saved["a"] * evaluation[0].score + saved["b"], abs=1e-5)
    assert entries["calibration"]["a"] == pytest.approx(saved["a"])
    raw_eval = detection_metrics(
        [r.score for r in evaluation if r.key == "bonafide"],
        [r.score for r in evaluation if r.key == "spoof"],
    )
    assert entries["calibrated"]["cllr"] < raw_eval["cllr"] - 0.5
    assert entries["calibrated"]["eer"] == pytest.approx(raw_eval["eer"])


def test_calibration_never_reverses_the_ranking():
    # Dev scores that rank worse than chance: the slope stops at its lower
    # bound instead of turning negative, so EER and minDCF stay as they were.
    bonafide, spoof = gaussian_llrs(np.random.default_rng(5), 2000)
    calibration = fit_calibration(records(-bonafide, -spoof))
    assert 0 < calibration.a < 1e-3
    raw = detection_metrics(-bonafide, -spoof)
    cal = detection_metrics(calibration.apply(-bonafide), calibration.apply(-spoof))
    assert cal["eer"] == pytest.approx(raw["eer"]) and cal["min_dcf"] == pytest.approx(raw["min_dcf"])
    assert cal["cllr"] < raw["cllr"]
    # A fusion may weigh a system negatively.
    features = np.concatenate([-bonafide, -spoof])[:, None]
    labels = np.arange(features.shape[0]) < bonafide.size
    weights, _ = fit_logistic(features, labels, 0.5)
    assert weights[0] == pytest.approx(-1.0, abs=0.1)
