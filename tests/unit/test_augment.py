"""Training augmentation: RawBoost, codec round trips, noise/reverb lists,
the per-utterance chain and its place in the data pipeline."""

import glob
import os
import re

import av
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from codec_support import require_codecs, runnable

from lobes.augment import build_augmenter
from lobes.augment.codec import CODECS, CodecRoundTrip, CodecSpec, best_lag, missing_codecs
from lobes.augment.lists import musan_list, rirs_list
from lobes.augment.noise import NoiseFromList, ReverbFromList, check_audio_list
from lobes.augment.rawboost import (
    DEFAULTS,
    RawBoost,
    check_params,
    isd_additive_noise,
    lnl_convolutive_noise,
    ssi_additive_noise,
)
from lobes.dataio.dataset import make_dataset, make_datasets

SR = 16000
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def speech_like(n, seed=0, amplitude=0.3):
    """Band-limited noise with a syllable-rate envelope."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spectrum[(freqs < 100) | (freqs > 3800)] = 0
    x = np.fft.irfft(spectrum, n) * (0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 3 * np.arange(n) / SR)))
    return amplitude * x / np.abs(x).max()


def band_power(x, low, high):
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.shape[0], 1 / SR)
    return spectrum[(freqs >= low) & (freqs < high)].sum()


# ---------------------------------------------------------------- RawBoost

PARAMS = check_params({}, SR)


@pytest.mark.parametrize("P", [10, 3])
def test_isd_changes_at_most_P_percent_of_samples(P):
    params = dict(PARAMS, P=P)
    x = np.random.default_rng(0).uniform(-0.1, 0.1, SR)  # quiet: no peak limiting
    fractions = []
    for seed in range(20):
        y = isd_additive_noise(x, np.random.default_rng(seed), params)
        fractions.append(np.mean(y != x))
    assert max(fractions) <= P / 100
    assert max(fractions) > P / 200  # it does change samples, up to near P %


def test_ssi_snr_falls_in_range():
    x = speech_like(SR, amplitude=0.1)
    snrs = []
    for seed in range(20):
        noise = ssi_additive_noise(x, np.random.default_rng(seed), PARAMS, SR) - x
        snrs.append(10 * np.log10(np.sum(x**2) / np.sum(noise**2)))
    assert PARAMS["SNRmin"] <= min(snrs) and max(snrs) <= PARAMS["SNRmax"]
    fixed = dict(PARAMS, SNRmin=20.0, SNRmax=20.0)
    noise = ssi_additive_noise(x, np.random.default_rng(0), fixed, SR) - x
    assert 10 * np.log10(np.sum(x**2) / np.sum(noise**2)) == pytest.approx(20.0, abs=1e-6)


def test_lnl_notches_the_spectrum():
    # One linear band, 2.5-3.5 kHz, 201 taps: a deep notch, passband untouched.
    params = check_params(
        {"nBands": 1, "N_f": 1, "minF": 3000, "maxF": 3000, "minBW": 1000, "maxBW": 1000,
         "minCoeff": 201, "maxCoeff": 201}, SR,
    )
    x = np.random.default_rng(1).standard_normal(2 * SR) * 0.05
    y = lnl_convolutive_noise(x, np.random.default_rng(0), params, SR)
    notch_db = 10 * np.log10(band_power(y, 2700, 3300) / band_power(x, 2700, 3300))
    pass_db = 10 * np.log10(band_power(y, 500, 2000) / band_power(x, 500, 2000))
    assert notch_db < -20
    assert abs(pass_db) < 1


@pytest.mark.parametrize("mode,steps", [
    (4, ["lnl", "isd", "ssi"]), (5, ["lnl", "isd"]), (6, ["lnl", "ssi"]), (7, ["isd", "ssi"]),
])
def test_series_modes_compose(mode, steps):
    x = speech_like(SR)
    rng = np.random.default_rng(7)
    expected = x
    for step in steps:
        if step == "lnl":
            expected = lnl_convolutive_noise(expected, rng, PARAMS, SR)
        elif step == "isd":
            expected = isd_additive_noise(expected, rng, PARAMS)
        else:
            expected = ssi_additive_noise(expected, rng, PARAMS, SR)
    expected = expected / max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(RawBoost(mode)(x, np.random.default_rng(7)), expected)


def test_parallel_mode_sums_then_normalises():
    x = speech_like(SR)
    rng = np.random.default_rng(3)
    summed = lnl_convolutive_noise(x, rng, PARAMS, SR) + isd_additive_noise(x, rng, PARAMS)
    y = RawBoost(8)(x, np.random.default_rng(3))
    np.testing.assert_allclose(y, summed / max(1.0, np.abs(summed).max()))
    assert not np.allclose(y, RawBoost(5)(x, np.random.default_rng(3)))


@pytest.mark.parametrize("mode", range(9))
def test_same_seed_same_output_and_bounded(mode):
    boost = RawBoost(mode)
    for x in (speech_like(SR), np.random.default_rng(2).uniform(-1, 1, SR), np.zeros(SR)):
        a = boost(x, np.random.default_rng(11))
        assert np.array_equal(a, boost(x, np.random.default_rng(11)))
        assert a.shape == x.shape and np.all(np.isfinite(a)) and np.abs(a).max() <= 1 + 1e-12
    if mode:
        x = speech_like(SR)
        assert not np.array_equal(boost(x, np.random.default_rng(1)), boost(x, np.random.default_rng(2)))


def test_rawboost_published_defaults_and_overrides():
    assert DEFAULTS["nBands"] == 5 and DEFAULTS["P"] == 10 and DEFAULTS["SNRmax"] == 40
    assert RawBoost(3, SNRmin=5, SNRmax=6).params["SNRmin"] == 5
    assert check_params({"maxF": 12000}, 8000)["maxF"] == 4000  # clamped to Nyquist
    # from a YAML block
    (_, _, boost), = build_augmenter({"rawboost": {"p": 1.0, "mode": 3, "SNRmin": 5}}).methods
    assert boost.mode == 3 and boost.params["SNRmin"] == 5 and boost.params["nBands"] == 5


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": 9}, r"rawboost.mode must be one of"),
    ({"nbands": 3}, r"rawboost.nbands is not a RawBoost parameter"),
    ({"minF": 900, "maxF": 100}, r"rawboost.minF \(900\) exceeds rawboost.maxF"),
    ({"P": 150}, r"rawboost.P is a percentage"),
    ({"nBands": 0}, r"rawboost.nBands must be a positive integer"),
])
def test_rawboost_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RawBoost(**kwargs)


def test_rawboost_clip_shorter_than_filter():
    with pytest.raises(ValueError, match=r"shorter than the longest notch filter .*maxCoeff"):
        RawBoost(1)(np.zeros(100), np.random.default_rng(0))


# ------------------------------------------------------------------ Codecs

ONE_BITRATE_EACH = {
    "mp3": [16000], "aac": [32000], "opus": [16000], "g722": [64000], "pcm_mulaw": [64000],
    "pcm_alaw": [64000], "amr_nb": [12200], "adpcm_g726": [32000], "ac3": [96000],
}
NARROWBAND = ("pcm_mulaw", "pcm_alaw", "amr_nb", "adpcm_g726")


@pytest.fixture(scope="module")
def codec():
    """Every codec the installed build runs (a test needing a missing one is
    skipped by name, see ``require_codecs``)."""
    return CodecRoundTrip(runnable(ONE_BITRATE_EACH), SR)


def test_every_codec_is_covered():
    assert set(ONE_BITRATE_EACH) == set(CODECS)


@pytest.mark.parametrize("name", sorted(ONE_BITRATE_EACH))
def test_codec_round_trip_is_aligned_and_as_long(codec, name):
    require_codecs(name)
    bitrate = ONE_BITRATE_EACH[name][0]
    x = speech_like(12345, seed=5)  # not a whole number of codec frames
    y = codec.round_trip(x, name, bitrate)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    assert abs(best_lag(x, y, 2000)) <= 1
    assert np.corrcoef(x, y)[0, 1] > 0.7  # it is still the same signal


def test_low_bitrate_mp3_and_narrowband_codecs_remove_high_frequencies(codec):
    require_codecs("mp3", "g722", *NARROWBAND)
    x = np.random.default_rng(3).standard_normal(2 * SR) * 0.1
    above = lambda y, f0: band_power(y, f0, SR / 2) / band_power(y, 0, SR / 2)  # noqa: E731
    assert above(codec.round_trip(x, "mp3", 16000), 5500) < 0.01 * above(x, 5500)
    for name in NARROWBAND:
        y = codec.round_trip(x, name, ONE_BITRATE_EACH[name][0])
        assert above(y, 4500) < 1e-3 * above(x, 4500), name
    # a wideband codec keeps them
    assert above(codec.round_trip(x, "g722", 64000), 4500) > 0.5 * above(x, 4500)


def test_codec_draws_from_the_list():
    codec = CodecRoundTrip({"pcm_mulaw": [64000], "adpcm_g726": [16000, 40000]}, SR)
    x = speech_like(4000)
    outputs = {codec(x, np.random.default_rng(seed)).tobytes() for seed in range(12)}
    assert len(outputs) == 3


@pytest.mark.parametrize("codecs,match", [
    ({"mp4": [64000]}, r"codecs: unknown codec 'mp4'"),
    ({"mp3": [320000]}, r"codecs.mp3: mp3 refuses bitrate 320000"),
    ({"aac": [1000000]}, r"codecs.aac: aac refuses bitrate 1000000"),
    ({"amr_nb": [9000]}, r"codecs.amr_nb: amr_nb refuses bitrate 9000"),
    ({"opus": [320000]}, r"codecs.opus: opus at 320000 bit/s fails"),
    ({"mp3": ["64k"]}, r"codecs.mp3: bitrate must be a positive integer"),
    ({}, r"codec.codecs must map codec names"),
])
def test_codec_bad_options(codecs, match):
    require_codecs(*(name for name in codecs if name in CODECS))
    with pytest.raises(ValueError, match=match):
        CodecRoundTrip(codecs, SR)


# ------------------------------------------------------- Noise and reverb


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Tiny MUSAN and RIRS_NOISES trees and their lists."""
    root = tmp_path_factory.mktemp("corpora")
    rng = np.random.default_rng(0)
    for sub in ("free-sound", "sound-bible"):
        os.makedirs(root / "musan" / "noise" / sub)
        for i in range(2):
            sf.write(root / "musan" / "noise" / sub / f"n{i}.wav", 0.1 * rng.standard_normal(SR // 2), SR)
    room = root / "RIRS_NOISES" / "simulated_rirs" / "smallroom" / "Room001"
    os.makedirs(room)
    for i in range(2):
        rir = np.zeros(2000)
        rir[40] = 1.0
        rir[41:] = 0.1 * rng.standard_normal(1959) * np.exp(-np.arange(1959) / 300)  # direct path dominates
        sf.write(room / f"r{i}.wav", rir, SR)
    musan_list(str(root / "musan"), str(root / "noise.csv"))
    rirs_list(str(root / "RIRS_NOISES"), str(root / "rirs.csv"))
    return root


def test_lists_from_musan_and_rirs(corpora):
    assert check_audio_list(str(corpora / "noise.csv"), SR, "noise.csv") == 4
    assert check_audio_list(str(corpora / "rirs.csv"), SR, "reverb.csv") == 2
    with pytest.raises(FileNotFoundError, match=r"music is missing"):
        musan_list(str(corpora / "musan"), str(corpora / "x.csv"), subsets=("music",))


def test_noise_from_list(corpora):
    x = speech_like(SR)
    loud = NoiseFromList(str(corpora / "noise.csv"), 0, 0, SR)
    quiet = NoiseFromList(str(corpora / "noise.csv"), 30, 30, SR)
    y = loud(x, np.random.default_rng(0))
    assert y.shape == x.shape and np.all(np.isfinite(y))
    np.testing.assert_array_equal(y, loud(x, np.random.default_rng(0)))
    # the file is drawn from the generator: several seeds, several noises
    assert len({loud(x, np.random.default_rng(seed)).tobytes() for seed in range(8)}) > 1
    assert np.corrcoef(x, y)[0, 1] < 0.9
    assert np.corrcoef(x, quiet(x, np.random.default_rng(0)))[0, 1] > 0.99


def test_reverb_from_list(corpora):
    x = speech_like(SR)
    reverb = ReverbFromList(str(corpora / "rirs.csv"), SR)
    y = reverb(x, np.random.default_rng(0))
    assert y.shape == x.shape and np.all(np.isfinite(y))
    assert best_lag(x, y, 500) == 0  # direct path aligned
    assert not np.allclose(x, y)


def test_bad_lists(corpora, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"augment.noise.csv: list .*absent.csv does not exist"):
        check_audio_list(str(tmp_path / "absent.csv"), SR, "augment.noise.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("ID,duration,wav,wav_format,wav_opts\n")
    with pytest.raises(ValueError, match=r"augment.noise.csv: list .*empty.csv is empty"):
        check_audio_list(str(empty), SR, "augment.noise.csv")
    sf.write(tmp_path / "n8k.wav", np.zeros(800), 8000)
    wrong_rate = tmp_path / "rate.csv"
    wrong_rate.write_text(f"ID,duration,wav,wav_format,wav_opts\nn,0.1,{tmp_path / 'n8k.wav'},wav,\n")
    with pytest.raises(ValueError, match=r"rate.csv line 2: .*n8k.wav is sampled at 8000 Hz"):
        check_audio_list(str(wrong_rate), SR, "augment.noise.csv")
    sf.write(tmp_path / "stereo.wav", np.zeros((800, 2)), SR)
    stereo = tmp_path / "stereo.csv"
    stereo.write_text(f"ID,duration,wav,wav_format,wav_opts\ns,0.1,{tmp_path / 'stereo.wav'},wav,\n")
    with pytest.raises(ValueError, match=r"stereo.wav has 2 channels"):
        check_audio_list(str(stereo), SR, "augment.reverb.csv")
    bare = tmp_path / "bare.csv"
    bare.write_text(f"wav\n{tmp_path / 'n8k.wav'}\n")
    with pytest.raises(ValueError, match=r"lacks the columns"):
        check_audio_list(str(bare), SR, "augment.noise.csv")
    with pytest.raises(ValueError, match=r"augment.noise.csv is not set"):
        build_augmenter({"noise": {"p": 0.5, "csv": None}})


# --------------------------------------------------- The chain and YAML


def recipe_block(path):
    """The ``augment:`` block of a recipe YAML (plain YAML, no tags)."""
    text = open(path, encoding="utf-8").read()
    match = re.search(r"^augment:\n(?:(?:    .*)?\n)+", text, re.M)
    return yaml.safe_load(match.group(0))["augment"]


RECIPE_YAMLS = sorted(glob.glob(os.path.join(REPO, "recipes", "*", "hparams", "*.yaml")))


@pytest.mark.parametrize("path", RECIPE_YAMLS, ids=lambda p: os.path.relpath(p, REPO))
def test_every_recipe_has_the_augment_block(path):
    block = recipe_block(path)
    probabilities = {name: block[name]["p"] for name in ("rawboost", "reverb", "noise", "codec")}
    if path.endswith("aasist_rawboost.yaml"):
        assert probabilities == {"rawboost": 1.0, "reverb": 0.0, "noise": 0.0, "codec": 0.0}
        assert block["rawboost"]["mode"] == 5 and block["dev"] is True
    else:  # paper configurations: off
        assert set(probabilities.values()) == {0.0} and block["dev"] is False
        assert build_augmenter(block) is None
    assert block["position"] == "before_crop"


def test_recipe_block_codec_list_builds():
    block = recipe_block(RECIPE_YAMLS[0])
    require_codecs(*block["codec"]["codecs"])
    block["codec"]["p"] = 1.0
    augmenter = build_augmenter(block)
    assert [name for name, _, _ in augmenter.methods] == ["codec"]


def test_a_codec_the_build_lacks_is_named_with_the_pyav_version_and_the_fix(monkeypatch):
    monkeypatch.setitem(CODECS, "madeup", CodecSpec("libmadeup_enc", "madeup_dec", 16000, "s16"))
    with pytest.raises(ValueError) as err:
        build_augmenter({"codec": {"p": 1.0, "codecs": {"pcm_mulaw": [64000], "madeup": [64000]}}})
    assert str(err.value) == (
        f"augment.codec.codecs: the FFmpeg build of the installed PyAV {av.__version__} cannot run "
        "madeup (no encoder libmadeup_enc and no decoder madeup_dec). Drop madeup from "
        "augment.codec.codecs, or install the locked versions (pip install --no-deps -r requirements/lock.txt)"
    )
    assert missing_codecs(["pcm_mulaw", "madeup"]) == {"madeup": ["encoder libmadeup_enc", "decoder madeup_dec"]}
    # A decoder-only name as the encoder: found missing, not crashed on.
    monkeypatch.setitem(CODECS, "half", CodecSpec("amrnb", "pcm_mulaw", 8000, "s16"))
    assert missing_codecs(["half"]) == {"half": ["encoder amrnb"]}


@pytest.mark.parametrize("config,match", [
    ({"rawbost": {"p": 0.5}}, r"augment.rawbost is not an option"),
    ({"codec": {"p": 1.5}}, r"augment.codec.p must be a probability"),
    ({"position": "middle", "rawboost": {"p": 1}}, r"augment.position must be one of"),
    ({"order": ["rawboost", "rawboost"]}, r"augment.order must list distinct"),
    ({"order": ["codec"], "rawboost": {"p": 1}}, r"augment.order leaves out \['rawboost'\]"),
    ({"noise": {"p": 1, "csv": "x.csv", "snr": 3}}, r"augment.noise.snr is not an option"),
    ({"rawboost": {"mode": 5}}, r"augment.rawboost must be a mapping with a probability p"),
    ({"dev": "yes", "rawboost": {"p": 1}}, r"augment.dev must be True or False"),
])
def test_bad_augment_blocks(config, match):
    with pytest.raises(ValueError, match=match):
        build_augmenter(config)


def test_probability_is_drawn_per_utterance():
    augmenter = build_augmenter({"rawboost": {"p": 0.5, "mode": 2}})
    x = torch.from_numpy(speech_like(4000).astype(np.float32))
    changed = [not torch.equal(augmenter(x), x) for _ in range(200)]
    assert 0.35 < np.mean(changed) < 0.65


def write_manifest(folder, n=6, seconds=0.5):
    """A manifest of ``n`` identical utterances (so any difference is augmentation)."""
    wav = folder / "same.wav"
    sf.write(wav, speech_like(int(seconds * SR)), SR)
    lines = ["ID,duration,wav,label,attack,speaker"]
    lines += [f"u{i},{seconds:.3f},{wav},bonafide,-,s{i}" for i in range(n)]
    for split in ("train", "dev", "eval"):
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return folder


def loader_signals(dataset, num_workers, seed):
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=num_workers, shuffle=False
    )
    return [item["sig"].numpy() for item in loader]


def test_augmentation_runs_in_workers_reproducibly(tmp_path):
    manifest = write_manifest(tmp_path) / "train.csv"
    augmenter = build_augmenter({"rawboost": {"p": 1.0, "mode": 4}})
    dataset = make_dataset(str(manifest), "first", 6000, augmenter=augmenter)
    first = loader_signals(dataset, 2, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(first, loader_signals(dataset, 2, seed=1)))
    assert not all(np.array_equal(a, b) for a, b in zip(first, loader_signals(dataset, 2, seed=2)))
    # identical files, two workers: every utterance augmented differently
    assert len({sig.tobytes() for sig in first}) == len(first)
    assert all(np.all(np.isfinite(sig)) and sig.shape == (6000,) for sig in first)


def test_train_only_by_default_dev_as_a_switch(tmp_path):
    write_manifest(tmp_path, n=2)
    hparams = {
        "manifest_folder": str(tmp_path), "train_crop": "first", "eval_crop": "first",
        "max_samples": 4000, "augment": {"rawboost": {"p": 1.0, "mode": 2}},
    }

    def augmented(datasets):
        clean = datasets["eval"][0]["sig"]
        return {name: not torch.equal(ds[0]["sig"], clean) for name, ds in datasets.items()}

    assert augmented(make_datasets(hparams)) == {"train": True, "dev": False, "eval": False}
    hparams["augment"]["dev"] = True
    assert augmented(make_datasets(hparams)) == {"train": True, "dev": True, "eval": False}


def test_position_before_or_after_crop(tmp_path):
    manifest = str(write_manifest(tmp_path, n=1, seconds=0.5) / "train.csv")
    for position in ("before_crop", "after_crop"):
        augmenter = build_augmenter({"position": position, "rawboost": {"p": 1.0, "mode": 1}})
        # a 0.5 s file tiled to 1 s: augmenting after the crop breaks the repetition
        sig = make_dataset(manifest, "first", SR, augmenter=augmenter)[0]["sig"].numpy()
        repeats = np.allclose(sig[: SR // 2], sig[SR // 2 :])
        assert repeats == (position == "before_crop")


def test_clips_shorter_than_the_filter_fail_at_start_up(tmp_path):
    manifest = str(write_manifest(tmp_path, n=1, seconds=0.02) / "train.csv")
    augmenter = build_augmenter({"rawboost": {"p": 1.0, "mode": 5}})
    with pytest.raises(ValueError, match=r"train.csv: utterance u0 .* shorter than augment.rawboost"):
        make_dataset(manifest, "first", SR, augmenter=augmenter)
    after = build_augmenter({"position": "after_crop", "rawboost": {"p": 1.0, "mode": 5}})
    make_dataset(manifest, "first", SR, augmenter=after)  # the 1 s crop is long enough
    with pytest.raises(ValueError, match=r"max_samples=300 is shorter than augment.rawboost"):
        make_dataset(manifest, "first", 300, augmenter=after)
