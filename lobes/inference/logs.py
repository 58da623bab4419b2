"""Logging of the scoring commands (``lobes.detect``, ``lobes.release``)."""

import logging
import warnings

from transformers.utils import logging as transformers_logging


def quiet_libraries():
    """Silences expected loading chatter so that errors and the progress bar stand out."""
    transformers_logging.disable_progress_bar()
    # "<model> is frozen" is the intended state of an inference model.
    logging.getLogger("speechbrain.integrations.huggingface.huggingface").setLevel(logging.ERROR)
    # Raised inside torch's attention for WavLM's masks; harmless (see pytest.ini).
    warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask")
