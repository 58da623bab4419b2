"""The package layout: every module sits in a subpackage named after its job,
and no import goes from a lower layer to a higher one."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "lobes"

# Lower layers never import higher ones; packages of one layer do not import
# each other. ``testing`` builds fixtures from anything below it.
LAYERS = {
    "utils": 0,
    "models": 1,
    "augment": 1,
    "evaluation": 1,
    "dataio": 2,
    "training": 3,
    "inference": 4,
    "experiments": 5,
    "testing": 6,
}
# Thin ``python -m lobes.<name>`` entry points may import any layer.
ENTRY_POINTS = {
    "detect", "sweep", "fuse", "aggregate", "paper", "compare", "stats", "release",
    "region_eval", "segment_rttm", "timeline_plot",
}


def lobes_imports(path):
    """Subpackages (``lobes.<sub>``) imported by the module at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "lobes" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_module_sits_in_a_job_subpackage():
    stray = [
        p.name for p in PACKAGE.glob("*.py")
        if p.stem not in ENTRY_POINTS and p.name != "__init__.py"
    ]
    assert not stray, f"modules outside the job subpackages: {stray}"
    subpackages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert subpackages == set(LAYERS), subpackages ^ set(LAYERS)


def test_entry_points_are_thin():
    for stem in ENTRY_POINTS:
        path = PACKAGE / f"{stem}.py"
        if path.exists():
            code = [line for line in path.read_text().splitlines() if line.strip()]
            assert len(code) <= 6, f"{path} should only import and call main()"


def test_no_import_goes_upward():
    violations = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if len(relative.parts) == 1:
            continue  # package __init__ and entry points
        own = relative.parts[0]
        for imported in lobes_imports(path):
            if imported == own:
                continue
            if imported not in LAYERS:
                violations.append(f"{relative} imports lobes.{imported} (not a layer)")
            elif LAYERS[imported] >= LAYERS[own]:
                violations.append(
                    f"{relative} ({own}, layer {LAYERS[own]}) imports lobes.{imported} (layer {LAYERS[imported]})"
                )
    assert not violations, "\n".join(violations)


def test_the_layer_check_can_fail(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from lobes.training.brain import SpoofBrain\nimport lobes.utils.files\n")
    assert lobes_imports(module) == {"training", "utils"}
