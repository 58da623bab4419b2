"""The lock (``requirements/lock.txt``) that the README and CI install:
setup.py's ranges admit every locked version, the lock holds every
dependency of the package and its test extras at versions that fit each
other, and the locked PyAV runs every codec the recipes name."""

import importlib.metadata
import os
import re
import runpy
from unittest import mock

import av
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from lobes.augment.codec import CODECS, LOCK, missing_codecs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCK_PATH = os.path.join(REPO, LOCK)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def read_lock(path=LOCK_PATH):
    """``{canonical name: Version}`` of a lock; any other line fails, naming it."""
    pins = {}
    with open(path, encoding="utf-8") as fin:
        for number, line in enumerate(fin, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = PIN.match(line)
            assert match, f"{path}:{number}: not 'name==version': {line!r}"
            name = canonicalize_name(match.group(1))
            assert name not in pins, f"{path}:{number}: {name} pinned twice"
            pins[name] = Version(match.group(2))
    return pins


def setup_arguments():
    """The keyword arguments setup.py passes to ``setup()`` (not installed metadata,
    which is stale after an edit until the next install)."""
    captured = {}
    with mock.patch("setuptools.setup", lambda **kwargs: captured.update(kwargs)):
        runpy.run_path(os.path.join(REPO, "setup.py"))
    return captured


def setup_requirements():
    """Every requirement of setup.py: the package's and each extra's."""
    arguments = setup_arguments()
    extras = [req for group in arguments["extras_require"].values() for req in group]
    return [Requirement(req) for req in [*arguments["install_requires"], *extras]]


def test_the_lock_pins_every_line_once():
    pins = read_lock()
    assert {"torch", "torchaudio", "speechbrain", "transformers", "av", "setuptools"} <= set(pins)


def test_read_lock_names_a_bad_line(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# header\ntorch==2.14.1\nav>=14\n")
    with pytest.raises(AssertionError, match=r"lock.txt:3: not 'name==version': 'av>=14'"):
        read_lock(lock)


def test_every_range_in_setup_py_admits_the_locked_version():
    pins = read_lock()
    outside = [
        f"{req.name} {pins[canonicalize_name(req.name)]} (setup.py: {req.specifier})"
        for req in setup_requirements()
        if canonicalize_name(req.name) in pins
        and not req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True)
    ]
    unlocked = [req.name for req in setup_requirements() if canonicalize_name(req.name) not in pins]
    assert not outside, f"locked versions outside setup.py's ranges: {outside}"
    assert not unlocked, f"setup.py requirements missing from the lock: {unlocked}"


def installed_differences(pins):
    """``name installed (lock version)`` for each locked package installed at another version."""
    differences = []
    for name, version in sorted(pins.items()):
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            differences.append(f"{name} not installed (lock {version})")
            continue
        if installed != version:
            differences.append(f"{name} {installed} (lock {version})")
    return differences


def require_the_locked_environment(pins):
    """Skips, naming the differences, unless the installed versions are the lock's:
    a check of the lock's own metadata or build needs them installed."""
    differences = installed_differences(pins)
    if differences:
        pytest.skip(f"the installed environment is not the lock: {', '.join(differences)}")


def test_the_lock_holds_every_dependency_at_versions_that_fit():
    """From the package's requirements (with its test and onnx extras), every
    dependency, direct or not, is in the lock at a version its dependents
    admit; the walk reads each locked package's installed metadata. This is
    where a torch/torchaudio or transformers/huggingface_hub mismatch shows."""
    pins = read_lock()
    require_the_locked_environment(pins)
    problems, seen = [], set()
    pending = [(req, "setup.py") for req in setup_requirements()]
    while pending:
        req, dependent = pending.pop()
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req} (needed by {dependent}) is not in the lock")
            continue
        if not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{dependent} needs {req}; the lock has {name} {pins[name]}")
        if (name, tuple(sorted(req.extras))) in seen:
            continue
        seen.add((name, tuple(sorted(req.extras))))
        for line in importlib.metadata.requires(name) or []:
            sub = Requirement(line)
            wanted = sub.marker is None or any(
                sub.marker.evaluate({"extra": extra}) for extra in (sorted(req.extras) or [""])
            )
            if wanted:
                pending.append((sub, f"{name} {pins[name]}"))
    assert not problems, "\n".join(problems)
    # Nothing locked that nothing needs, but for the installer's own tools.
    reached = {name for name, _ in seen}
    assert set(pins) - reached <= {"setuptools"}, f"locked but not needed: {sorted(set(pins) - reached)}"


def test_the_locked_pyav_runs_every_codec():
    pins = read_lock()
    if Version(av.__version__) != pins["av"]:
        pytest.skip(f"PyAV {av.__version__} is installed, the lock has {pins['av']}")
    assert missing_codecs(CODECS) == {}


def test_readme_and_ci_install_through_the_lock():
    install = "pip install --no-deps -r requirements/lock.txt && pip install --no-deps -e ."
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    ci = open(os.path.join(REPO, ".ci", "run"), encoding="utf-8").read()
    assert readme.count(install) >= 2  # the demo's and the tests' commands
    assert install in ci
