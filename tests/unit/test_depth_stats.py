"""Intervals, significance marks, the non-inferiority table and the interval
bands of ``lobes.experiments.aggregate`` on a stand-in sweep of simulated score files
(tests/score_sweep.py; 200 bootstrap replicates to stay fast)."""

import pytest
from score_sweep import make_score_sweep

from lobes.experiments.aggregate import aggregate, load_results
from lobes.experiments.depth_stats import depth_statistics


def test_depth_statistics_answer_and_marks(tmp_path):
    make_score_sweep(str(tmp_path / "sweep"), trials=4000, heads={"ffn": 0.0}, seeds=(1, 2))
    cells, answers = depth_statistics(load_results(str(tmp_path / "sweep")), margin=1.0, replicates=200)
    (answer,) = answers
    assert answer["full_depth"] == 12 and answer["depths"] == [2, 4, 8, 12]
    column = ("ASVspoof2019", "eval")
    shallow = cells[(("tiny-wavlm", "ffn", 2), column)]["vs_full"]
    # N=2 is far worse (separation 2.3 against 2.8): significant, not non-inferior.
    assert shallow["p_value"] < 0.05 and shallow["non_inferior"] is False
    assert shallow["interval"]["low"] > 1.0
    deep = cells[(("tiny-wavlm", "ffn", 8), column)]["vs_full"]
    assert deep["non_inferior"] is True and deep["interval"]["high"] < 1.0
    assert answer["smallest_non_inferior"] == 8
    full = cells[(("tiny-wavlm", "ffn", 12), column)]
    assert "vs_full" not in full and full["interval"]["low"] < full["interval"]["high"]


def test_aggregate_writes_intervals_table_and_bands(tmp_path):
    make_score_sweep(str(tmp_path / "sweep"), trials=600, heads={"ffn": 0.0}, seeds=(1,))
    written = aggregate(str(tmp_path / "sweep"), str(tmp_path / "out"), replicates=200)
    table = (tmp_path / "out" / "eer_table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| tiny-wavlm | ffn | 2 |"))
    assert row.endswith("]* |")  # an interval and the significance mark
    noninferiority = (tmp_path / "out" / "noninferiority.md").read_text()
    assert "| ASVspoof2019 | eval | tiny-wavlm | ffn | 12 |" in noninferiority and "N=2: +" in noninferiority
    assert str(tmp_path / "out" / "noninferiority.md") in written

    # A run whose score file lost a trial: its cell says why, nothing crashes.
    scores = tmp_path / "sweep" / "ASVspoof2019" / "tiny-wavlm" / "ffn" / "N4" / "seed1" / "scores" / "eval.txt"
    scores.write_text("".join(scores.read_text().splitlines(keepends=True)[1:]))
    aggregate(str(tmp_path / "sweep"), str(tmp_path / "out2"), replicates=50)
    noninferiority = (tmp_path / "out2" / "noninferiority.md").read_text()
    assert "no interval:" in noninferiority
    assert "scored different trials: only in the first 1 (T00000)" in noninferiority


def test_bands_are_drawn_from_the_intervals(tmp_path):
    from lobes.experiments.aggregate import eer_table
    from lobes.experiments.depth_stats import interval_bands
    from lobes.experiments.plots import eer_vs_depth_figure

    make_score_sweep(str(tmp_path / "sweep"), trials=600, heads={"ffn": 0.0}, seeds=(1,))
    records = load_results(str(tmp_path / "sweep"))
    rows, columns, _ = eer_table(records)
    cells, _ = depth_statistics(records, replicates=50)
    bands = interval_bands(rows, cells, columns[0])
    assert [depth for depth, _, _ in bands["tiny-wavlm ffn"]] == [2, 4, 8, 12]
    fig = eer_vs_depth_figure({"tiny-wavlm ffn": [(d, (lo + hi) / 2, 0.0) for d, lo, hi in bands["tiny-wavlm ffn"]]},
                              "t", bands=bands)
    assert len(fig.axes[0].collections) >= 1  # the shaded band
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "95 % interval of the seed mean (shaded)" in labels


def test_speaker_bootstrap_from_a_manifest(tmp_path, capsys):
    """--manifest resamples a test set's speakers: with scores correlated within
    a speaker the intervals widen, and the table says what was resampled."""
    from lobes.experiments.aggregate import main, manifest_speakers

    sweep = str(tmp_path / "sweep")
    make_score_sweep(sweep, trials=2000, heads={"ffn": 0.0}, seeds=(1,), n_speakers=20, speaker_effect=1.5)
    manifest = tmp_path / "eval.csv"
    manifest.write_text("ID,speaker\n" + "".join(f"T{i:05d},S{i % 20}\n" for i in range(2000)))
    records = load_results(sweep)
    column = ("ASVspoof2019", "eval")
    by_trial, (trial_answer,) = depth_statistics(records, replicates=200)
    by_speaker, (speaker_answer,) = depth_statistics(
        records, replicates=200, speakers=manifest_speakers([f"ASVspoof2019/eval={manifest}"]))
    assert trial_answer["unit"] == "trial"
    assert speaker_answer["unit"] == "speaker" and speaker_answer["n_speakers"] == 20

    def width(cells, depth):
        interval = cells[(("tiny-wavlm", "ffn", depth), column)]["interval"]
        return interval["high"] - interval["low"]

    assert all(width(by_speaker, d) > 1.5 * width(by_trial, d) for d in (2, 4, 8, 12))

    main([sweep, "--out", str(tmp_path / "out"), "--replicates", "50",
          "--manifest", f"ASVspoof2019/eval={manifest}"])
    assert "| 20 speakers |" in (tmp_path / "out" / "noninferiority.md").read_text()

    # Errors name what is wrong: a set no run scored, a trial without a speaker.
    with pytest.raises(SystemExit, match="--manifest names ASVspoof2019/dev, which no run below"):
        main([sweep, "--out", str(tmp_path / "out"), "--manifest", f"ASVspoof2019/dev={manifest}"])
    manifest.write_text("ID,speaker\n" + "".join(f"T{i:05d},S{i % 20}\n" for i in range(1, 2000)))
    with pytest.raises(SystemExit, match=f"the manifest {manifest}: 1 trials have no speaker \\(e.g. T00000\\)"):
        main([sweep, "--out", str(tmp_path / "out3"), "--replicates", "20",
              "--manifest", f"ASVspoof2019/eval={manifest}"])
