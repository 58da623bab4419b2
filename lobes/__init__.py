"""Shared building blocks for layer-wise SSL audio deepfake detection recipes.

The package holds what every recipe needs: a truncated self-supervised speech
encoder with a learnable weighted sum over its layers (:mod:`lobes.ssl`,
:mod:`lobes.fusion`), classifier heads (:mod:`lobes.heads`), metrics and
score files (:mod:`lobes.metrics`, :mod:`lobes.scores`), the shared data
pipeline (:mod:`lobes.data`) and the shared ``sb.Brain`` (:mod:`lobes.brain`).
"""

__version__ = "0.1.0"
