"""EER, t-DCF, per-group EER and score files."""

import numpy as np
import pytest

from lobes.evaluation.metrics import (
    compute_eer,
    det_curve,
    eer_by_group,
    min_tdcf_2019,
    min_tdcf_2021,
    read_asv_scores,
)
from lobes.evaluation.scores import ScoreRecord, read_scores, write_scores


@pytest.mark.parametrize(
    "bonafide, spoof, expected",
    [
        ([0.9, 0.8, 0.7, 0.3], [0.6, 0.4, 0.2, 0.1, 0.05], 0.225),
        ([1, 2, 3], [-1, 0, 0.5], 0.0),
        ([0.1, 0.2], [0.3, 0.4], 1.0),
        ([0.5, 0.5, 1.0], [0.5, 0.0], 0.5833),  # ties, official definition
    ],
)
def test_eer_known_answers(bonafide, spoof, expected):
    assert compute_eer(bonafide, spoof)[0] == pytest.approx(expected, abs=1e-4)


def test_eer_is_independent_of_trial_order():
    rng = np.random.default_rng(0)
    bonafide, spoof = rng.normal(1, 1, 500), rng.normal(-1, 1, 3000)
    reference = compute_eer(bonafide, spoof)[0]
    assert 0.1 < reference < 0.25
    assert compute_eer(rng.permutation(bonafide), rng.permutation(spoof))[0] == reference


def test_eer_needs_both_classes():
    with pytest.raises(ValueError, match="need both bona fide and spoof"):
        compute_eer([1.0], [])


def test_det_curve_rates_are_monotonic():
    rng = np.random.default_rng(1)
    frr, far, thresholds = det_curve(rng.normal(size=50), rng.normal(size=60))
    assert np.all(np.diff(frr) >= 0) and np.all(np.diff(far) <= 0)
    assert frr[0] == 0 and far[0] == 1 and frr[-1] == 1 and far[-1] == 0


ASV = {
    "target": np.array([2.0, 3.0, 4.0, 5.0]),
    "nontarget": np.array([-2.0, -1.0, 0.0, 2.5]),
    "spoof": np.array([1.0, 3.5, 4.5, -3.0]),
}


def hand_tdcf_2019(bonafide, spoof):
    """Brute force over thresholds, written from the 2019 definition."""
    # The official ASV threshold is the sorted score at the EER index: 2.0.
    threshold = 2.0
    pfa_asv = np.mean(ASV["nontarget"] >= threshold)
    pmiss_asv = np.mean(ASV["target"] < threshold)
    pmiss_spoof_asv = np.mean(ASV["spoof"] < threshold)
    c1 = 0.9405 * (1 - pmiss_asv) - 0.0095 * 10 * pfa_asv
    c2 = 10 * 0.05 * (1 - pmiss_spoof_asv)
    values = []
    for s in np.concatenate([[-np.inf], np.sort(np.concatenate([bonafide, spoof]))]):
        pmiss = np.mean(np.asarray(bonafide) < s)
        pfa = np.mean(np.asarray(spoof) >= s)
        values.append((c1 * pmiss + c2 * pfa) / min(c1, c2))
    return min(values)


def test_min_tdcf_2019_matches_a_brute_force_computation():
    assert compute_eer(ASV["target"], ASV["nontarget"])[1] == 2.0
    bonafide, spoof = [0.5, 1.5, 2.0, -0.2], [0.1, -1.0, 1.6, -2.0]
    assert min_tdcf_2019(bonafide, spoof, ASV) == pytest.approx(hand_tdcf_2019(bonafide, spoof))
    assert min_tdcf_2019([3.0, 4.0], [-1.0, 0.0], ASV) == pytest.approx(0.0)


def test_min_tdcf_2021_perfect_and_useless_countermeasures():
    perfect = min_tdcf_2021([3.0, 4.0], [-1.0, 0.0], ASV)
    useless = min_tdcf_2021([0.0, 1.0], [0.0, 1.0], ASV)
    assert perfect < useless <= 1.0 + 1e-9
    # A perfect CM leaves only the ASV's own cost C0 / (C0 + min(C1, C2)).
    pmiss_asv, pfa_asv, pfa_spoof_asv = 0.0, 0.25, 0.5  # at the ASV threshold 2.0
    c0 = 0.95 * 0.99 * pmiss_asv + 0.95 * 0.01 * 10 * pfa_asv
    c1, c2 = 0.95 * 0.99 - c0, 0.05 * 10 * pfa_spoof_asv
    assert perfect == pytest.approx(c0 / (c0 + min(c1, c2)))


def test_read_asv_scores_names_bad_lines(tmp_path):
    path = tmp_path / "asv.txt"
    path.write_text("bonafide target 2.79\nA07 spoof 0.35\nbonafide nontarget -3\n")
    groups = read_asv_scores(path)
    assert groups["target"].tolist() == [2.79] and groups["spoof"].tolist() == [0.35]
    path.write_text("bonafide target 2.79\nA07 spoofed 0.35\n")
    with pytest.raises(ValueError, match=r"asv\.txt:2"):
        read_asv_scores(path)


def test_eer_by_group_scores_each_attack_against_all_bonafide():
    scores = [0.9, 0.8, 0.1, 0.2, 0.85, 0.3]
    labels = ["bonafide", "bonafide", "spoof", "spoof", "spoof", "spoof"]
    groups = ["-", "-", "A07", "A07", "A08", "A08"]
    assert eer_by_group(scores, labels, groups) == {"A07": 0.0, "A08": 0.5}


def test_score_file_round_trip_and_overwrite(tmp_path):
    path = tmp_path / "scores" / "eval.txt"
    first = [ScoreRecord("LA_E_1", "-", "bonafide", 1.25), ScoreRecord("LA_E_2", "A07", "spoof", -3.5)]
    write_scores(path, first)
    write_scores(path, first)  # a rerun overwrites, never appends
    assert read_scores(path) == first
    assert len(path.read_text().splitlines()) == 2
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]


def test_duplicate_trials_are_refused(tmp_path):
    record = ScoreRecord("LA_E_1", "-", "bonafide", 0.0)
    with pytest.raises(ValueError, match="scored twice"):
        write_scores(tmp_path / "s.txt", [record, record])


def test_malformed_score_line_is_named(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("LA_E_1 - bonafide 0.5\nLA_E_2 A07 spoof\n")
    with pytest.raises(ValueError, match=r"s\.txt:2"):
        read_scores(path)
