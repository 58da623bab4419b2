"""Training augmentation, applied per utterance in the data pipeline.

- :mod:`lobes.augment.rawboost`: RawBoost (Tak et al., ICASSP 2022), modes 0-8;
- :mod:`lobes.augment.codec`: codec round trips through PyAV (FFmpeg);
- :mod:`lobes.augment.noise`: noise and reverberation from lists, through
  SpeechBrain's ``AddNoise`` / ``AddReverb``;
- :mod:`lobes.augment.lists`: writes those lists from MUSAN or RIRS_NOISES;
- :mod:`lobes.augment.chain`: the chain built from a recipe's ``augment:``
  block (``build_augmenter``), used by ``lobes.dataio.dataset.make_datasets``.
"""

from lobes.augment.chain import UtteranceAugmenter, build_augmenter

__all__ = ["UtteranceAugmenter", "build_augmenter"]
