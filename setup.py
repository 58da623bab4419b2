"""Layer-wise SSL audio deepfake detection recipes for SpeechBrain."""

from setuptools import find_packages, setup

ONNX = ["onnx>=1.17,<2", "onnxruntime>=1.20,<2", "onnxscript>=0.5,<1"]

setup(
    name="lobes",
    version="0.1.0",
    description="Truncated layer-wise SSL countermeasures for audio deepfake detection (SpeechBrain recipes)",
    packages=find_packages(include=["lobes", "lobes.*"]),
    # The paper's published EER tables (lobes.experiments.paper, lobes.experiments.aggregate).
    package_data={"lobes.experiments": ["paper_results.json"]},
    python_requires=">=3.10,<3.13",
    # Tested together: torch 2.14.1 + torchaudio 2.11.0, speechbrain 1.1.2,
    # transformers 5.23. torch 2.13 CPU does not import with PyPI's torchaudio.
    install_requires=[
        "torch>=2.14,<2.15",
        "torchaudio>=2.11,<2.12",
        "speechbrain>=1.1.2,<1.2",
        "transformers>=5.0,<6",
        "hyperpyyaml>=1.2",
        "sentencepiece",
        "soundfile>=0.12",
        # PyAV: FFmpeg codecs for lobes.augment.codec. 18.1.1's wheels lack the
        # AMR-NB encoder (libopencore_amrnb) that the recipes' codec lists use.
        "av>=14,<19,!=18.1.1",
        "matplotlib>=3.7",
        "numpy>=1.24",
        "scipy>=1.10",  # calibration and score fusion (scipy.optimize)
        "tqdm",
        # Release folders (lobes.release): weights, hub ids, plain YAML reading.
        "safetensors>=0.4",
        "huggingface_hub>=0.23",
        "pyyaml>=6",
    ],
    extras_require={
        # backend="onnx" of SpoofDetector / python -m lobes.detect (lobes.inference.fastpaths).
        "onnx": ONNX,
        # The tests cover the ONNX backend too.
        # pytest-xdist: the suite runs on two workers (one test file each at a time).
        # packaging: tests/unit/test_lock.py reads the lock and the ranges.
        # ruff: the lint CI runs before the tests (ruff.toml).
        "test": ["pytest>=8", "pytest-xdist>=3", "packaging>=23", "ruff>=0.15,<1", *ONNX],
    },
    entry_points={"console_scripts": ["lobes-detect = lobes.detect:main",
                                      "lobes-release = lobes.release:main"]},
)
