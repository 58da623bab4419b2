"""Shared building blocks for layer-wise SSL audio deepfake detection recipes.

The package holds what every recipe needs: a truncated self-supervised speech
encoder with a learnable weighted sum over its layers (:mod:`lobes.models.ssl`,
:mod:`lobes.models.layer_sum`), classifier heads (:mod:`lobes.models.heads`), metrics and
score files (:mod:`lobes.evaluation.metrics`, :mod:`lobes.evaluation.scores`), the shared data
pipeline (:mod:`lobes.dataio.dataset`) and the shared ``sb.Brain`` (:mod:`lobes.training.brain`).

Scoring, as ``speechbrain.inference`` offers it::

    from lobes import SpoofDetector
    detector = SpoofDetector.from_pretrained("releases/wavlm-N6-ffn-la19")

``SpoofDetector`` and the other names of ``lobes.inference`` are imported on
first use: ``import lobes`` alone loads neither torch nor a model.
"""

__version__ = "0.1.0"

_INFERENCE = ("SpoofDetector", "DetectionResult", "ReleaseError", "write_release", "verify_release")
__all__ = ["__version__", *_INFERENCE]


def __getattr__(name):
    if name in _INFERENCE:
        import lobes.inference

        return getattr(lobes.inference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
