"""The values recipe options may take, and their defaults, in one place.

Free of torch, so that the start-up check of a recipe's options
(``lobes.training.options``) reads them without loading a model; the data
pipeline, the Brain, the loss and the loaders of run folders and releases
read the same values.
"""

import math
import numbers

CROP_MODES = ("first", "random", "full")  # train_crop, eval_crop
DEFAULT_CROP = "first"
SELECTION_METRICS = ("EER", "loss")  # selection_metric, on dev
DEFAULT_SELECTION_METRIC = "EER"
# The paper's crop: the first 64,600 samples, about 4.04 s at 16 kHz.
DEFAULT_MAX_SAMPLES = 64600
N_CLASSES = 2  # logits and class weights are [spoof, bonafide]


def check_class_weights(weights, option="class_weights"):
    """Raises ``ValueError`` unless ``weights`` lists ``N_CLASSES`` positive,
    finite numbers, [spoof, bonafide].

    Example
    -------
    >>> check_class_weights([0.1, 0.9])
    >>> check_class_weights([0.5, -1])
    Traceback (most recent call last):
    ...
    ValueError: class_weights=[0.5, -1] must list 2 positive weights, [spoof, bonafide]
    """
    listed = isinstance(weights, (list, tuple))
    if (
        not listed
        or len(weights) != N_CLASSES
        or not all(
            isinstance(w, numbers.Number) and not isinstance(w, bool) and math.isfinite(w) and w > 0
            for w in weights
        )
    ):
        shown = list(weights) if listed else weights
        raise ValueError(f"{option}={shown!r} must list {N_CLASSES} positive weights, [spoof, bonafide]")
