"""pyproject.toml: the package builds, and its dependencies and extras are the requirement files'."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirements(path: Path) -> tuple[list[str], list[str]]:
    """(requirements, the files it includes with -r) of a requirements file."""
    reqs, includes = [], []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            includes.append(line[3:].strip())
        elif line:
            reqs.append(str(Requirement(line)))
    return reqs, includes


def test_extras_are_the_requirement_files():
    extras = PYPROJECT["project"]["optional-dependencies"]
    train, _ = requirements(ROOT / "requirements-train.txt")
    assert [str(Requirement(r)) for r in extras["train"]] == train
    test, includes = requirements(ROOT / "tests" / "requirements.txt")
    assert includes == ["../requirements-train.txt"]
    assert [str(Requirement(r)) for r in extras["test"]] == ["fruitseg[train]", *test]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}


@pytest.mark.timeout(120)
def test_the_package_builds_with_the_apps_dependencies(tmp_path):
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--editable", ".", "--no-deps", "--dry-run", "--no-build-isolation",
         "--quiet", "--report", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (install,) = json.loads(report.read_text())["install"]
    metadata = install["metadata"]
    assert metadata["name"] == "fruitseg" and set(metadata["provides_extra"]) == {"train", "test"}
    base = [r for r in metadata["requires_dist"] if "extra ==" not in r]
    assert sorted(map(str, map(Requirement, base))) == sorted(requirements(ROOT / "requirements.txt")[0])
    assert not list(ROOT.glob("*.egg-info"))  # nothing left in the tree


def test_conftest_leaves_sys_path_alone():
    assert "sys.path" not in (ROOT / "tests" / "conftest.py").read_text()  # pytest's pythonpath does it
    assert PYPROJECT["tool"]["pytest"]["ini_options"]["pythonpath"] == ["."]
