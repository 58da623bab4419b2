"""The package layout: every module sits in a subpackage named after its job,
no import goes from a lower layer to a higher one, and no modules of one
subpackage import each other in a circle."""

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


def module_imports(path):
    """Modules of ``lobes`` that the module at ``path`` imports, at module
    level or inside functions (``a.b`` from ``from lobes.a import b`` too:
    ``b`` may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("lobes."):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("lobes."))
    return found


def module_name(path):
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def import_cycles():
    """Import cycles among the modules of each subpackage, each as a list of module names."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name.rsplit(".", 1)[0]
        graph[name] = sorted(
            target for target in module_imports(path)
            if target in modules and target != name and target.rsplit(".", 1)[0] == package
        )
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for target in graph[node]:
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_no_import_circle_inside_a_subpackage():
    cycles = import_cycles()
    assert not cycles, "import circles (a module at the bottom should own what both need):\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


def test_the_public_api_is_where_a_user_looks_and_loads_lazily():
    """``from lobes import SpoofDetector``, as ``from speechbrain.inference
    import ...``; ``import lobes`` alone imports neither torch nor a model."""
    import subprocess
    import sys

    code = (
        "import sys, lobes, lobes.inference\n"
        "assert 'torch' not in sys.modules, 'import lobes loaded torch'\n"
        "from lobes import SpoofDetector, DetectionResult, ReleaseError, write_release, verify_release\n"
        "from lobes.inference.detector import SpoofDetector as defined\n"
        "assert SpoofDetector is defined and lobes.inference.SpoofDetector is defined\n"
        "try:\n    lobes.NoSuchThing\nexcept AttributeError as err:\n    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "module 'lobes' has no attribute 'NoSuchThing'"
