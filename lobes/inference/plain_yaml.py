"""Plain values of a model folder's YAML, without running any of it.

A recipe's output folder keeps a copy of its HyperPyYAML file, whose
``!apply:``/``!new:``/``!name:`` tags name Python callables. HyperPyYAML
calls them when the file is loaded, so loading a shared model folder with it
runs whatever that file names. A model folder is data: here the file is
parsed with PyYAML's safe loader and every tagged node becomes an
``IgnoredTag`` holding its plain contents; nothing is imported or called.
The modules are then built in code (``lobes.inference.run_loader``).
"""

import logging
from dataclasses import dataclass

import yaml

logger = logging.getLogger(__name__)

# Tags of the recipes' own YAMLs name callables of these packages; a tag that
# names anything else is reported by name (it is ignored either way).
RECIPE_PACKAGES = ("lobes", "speechbrain", "torch")


@dataclass(frozen=True)
class IgnoredTag:
    """A tagged YAML node that was not run: its tag, line and plain contents."""

    tag: str
    line: int
    value: object


class _PlainLoader(yaml.SafeLoader):
    """Safe loader that records tagged nodes instead of refusing them."""


def _record_tag(loader, suffix, node):
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    tagged = IgnoredTag("!" + suffix, node.start_mark.line + 1, value)
    loader.ignored.append(tagged)
    return tagged


_PlainLoader.add_multi_constructor("!", _record_tag)


def names_foreign_code(tag):
    """True for a tag that names a callable outside the recipes' packages.

    Example
    -------
    >>> names_foreign_code("!apply:os.system"), names_foreign_code("!new:lobes.models.ssl.LayerwiseSSL")
    (True, False)
    >>> names_foreign_code("!ref")
    False
    """
    kind, _, target = tag[1:].partition(":")
    if kind not in ("apply", "new", "name", "module"):
        return False
    return target.split(".")[0] not in RECIPE_PACKAGES


def read_plain_yaml(path):
    """The top-level mapping of a YAML file, with every tagged node ignored.

    Tagged nodes come back as ``IgnoredTag`` values (never constructed). A
    tag naming code outside the recipes' packages is logged as a warning
    with its file and line, so that a planted command is seen, not run.

    Example
    -------
    >>> path = getfixture("tmp_path") / "hyperparams.yaml"
    >>> _ = path.write_text('n_layers: 2\\npwned: !apply:os.system ["id > pwned.txt"]\\n')
    >>> values = read_plain_yaml(path)
    >>> values["n_layers"], values["pwned"].tag, values["pwned"].value
    (2, '!apply:os.system', ['id > pwned.txt'])
    """
    path = str(path)
    with open(path, encoding="utf-8") as fin:
        loader = _PlainLoader(fin)
        loader.ignored = []
        try:
            values = loader.get_single_data()
        except yaml.YAMLError as err:
            raise ValueError(f"{path} is not valid YAML: {err}") from err
        finally:
            loader.dispose()
    if not isinstance(values, dict):
        raise ValueError(f"{path} does not hold a YAML mapping of hyperparameters")
    for tagged in loader.ignored:
        if names_foreign_code(tagged.tag):
            logger.warning(
                "%s, line %d: %s ignored, not run (a model folder is data; its modules "
                "are built in code from plain values)", path, tagged.line, tagged.tag,
            )
    return values
