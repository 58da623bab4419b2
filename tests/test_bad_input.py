"""Bad input never ruins a run silently (issue 23): each test reproduces one
row of the issue's table and checks the clear error or safe outcome."""

import glob
import os
import time

import pytest

from lobes.recipe import load_recipe
from lobes.training.options import check_options, plain_hparams

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FFN_YAML = os.path.join(REPO, "recipes", "ASVspoof2019", "hparams", "ffn.yaml")


# --- options checked at start-up ------------------------------------------

@pytest.mark.parametrize("yaml_file", sorted(glob.glob(os.path.join(REPO, "recipes", "*", "hparams", "*.yaml"))))
def test_every_recipe_yaml_passes_the_start_up_check(yaml_file):
    check_options(plain_hparams(yaml_file, "data_folder: /x"), yaml_file)


@pytest.mark.parametrize("override, named, allowed", [
    ("--eval_crop=frist", "eval_crop='frist'", "first, random, full"),
    ("--train_crop=middle", "train_crop='middle'", "first, random, full"),
    ("--selection_metric=eer", "selection_metric='eer'", "EER, loss"),
    ("--class_weights=[0.5]", "class_weights=[0.5]", "2 positive weights"),
    ("--class_weights=[0.5, -1]", "class_weights=[0.5, -1]", "2 positive weights"),
    ("--max_samples=0", "max_samples=0", "greater than 0"),
    ("--batch_size=0", "batch_size=0", "greater than 0"),
    ("--lr=-1", "lr=-1", "greater than 0"),
    ("--number_of_epochs=0", "number_of_epochs=0", "greater than 0"),
    ("--head_type=transformer", "head_type='transformer'", "allowed here: ffn"),
    ("--head_type=aasist", "head_type='aasist'", "allowed here: ffn"),
])
def test_wrong_option_fails_in_seconds_naming_it(tmp_path, override, named, allowed):
    # A hub id that cannot be loaded offline: were any model built, the run
    # would fail differently (and slowly).
    argv = [FFN_YAML, f"--data_folder={tmp_path}", f"--output_folder={tmp_path / 'out'}",
            "--ssl_source=no-such/model", override]
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        load_recipe(argv)
    assert time.perf_counter() - start < 10
    message = str(exc.value.code)
    assert message.startswith("error: ") and named in message and allowed in message
    assert not (tmp_path / "out").exists()  # refused before anything was created
