"""Audio loading, crops, labels and the shared dataset pipeline."""

import numpy as np
import pytest
import soundfile as sf
import torch

from lobes.dataio.dataset import LABELS, crop_or_tile, label_to_index, load_audio, make_dataset
from lobes.dataio.prepare import Trial, write_manifest


def test_label_mapping_is_fixed():
    assert LABELS == {"spoof": 0, "bonafide": 1}
    with pytest.raises(ValueError, match="utterance 'x': label 'deepfake'"):
        label_to_index("deepfake", "x")


def test_crop_modes():
    wav = torch.arange(10.0)
    assert crop_or_tile(wav, 4).tolist() == [0, 1, 2, 3]
    assert crop_or_tile(wav, 25).tolist() == list(range(10)) * 2 + [0, 1, 2, 3, 4]
    assert torch.equal(crop_or_tile(wav, 4, "full"), wav)
    torch.manual_seed(0)
    starts = {int(crop_or_tile(wav, 4, "random")[0]) for _ in range(50)}
    assert starts == set(range(7))
    with pytest.raises(ValueError, match="crop mode"):
        crop_or_tile(wav, 4, "middle")


def test_load_audio_mixes_down_and_checks(tmp_path):
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([np.full(100, 0.2), np.full(100, 0.4)], axis=1), 16000)
    torch.testing.assert_close(load_audio(stereo), torch.full((100,), 0.3), atol=1e-4, rtol=0)
    narrow = tmp_path / "narrow.wav"
    sf.write(narrow, np.zeros(100), 8000)
    with pytest.raises(ValueError, match="narrow.wav is sampled at 8000 Hz"):
        load_audio(narrow)
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="cannot read audio file .*broken.flac"):
        load_audio(broken)
    with pytest.raises(RuntimeError, match="missing.wav"):
        load_audio(tmp_path / "missing.wav")


def test_dataset_yields_cropped_signals_and_fixed_labels(tmp_path):
    trials = []
    for index, (label, attack) in enumerate([("bonafide", "-"), ("spoof", "A07")]):
        path = tmp_path / f"u{index}.wav"
        sf.write(path, np.linspace(0, 0.5, 300 + 100 * index), 16000)
        trials.append(Trial(f"u{index}", label, attack, "spk", str(path), 0.02))
    manifest = tmp_path / "m.csv"
    write_manifest(str(manifest), trials)
    dataset = make_dataset(str(manifest), "first", 1000)
    items = [dataset[i] for i in range(2)]
    assert [item["label_index"] for item in items] == [1, 0]
    assert [item["key"] for item in items] == ["bonafide", "spoof"]
    assert [item["attack"] for item in items] == ["-", "A07"]
    assert all(item["sig"].shape == (1000,) for item in items)
