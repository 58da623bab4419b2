"""Shared building blocks for layer-wise SSL audio deepfake detection recipes.

The package holds what every recipe needs: a truncated self-supervised speech
encoder with a learnable weighted sum over its layers (:mod:`lobes.models.ssl`,
:mod:`lobes.models.layer_sum`), classifier heads (:mod:`lobes.models.heads`), metrics and
score files (:mod:`lobes.evaluation.metrics`, :mod:`lobes.evaluation.scores`), the shared data
pipeline (:mod:`lobes.dataio.dataset`) and the shared ``sb.Brain`` (:mod:`lobes.training.brain`).
"""

__version__ = "0.1.0"
