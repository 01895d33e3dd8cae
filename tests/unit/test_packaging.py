"""What an installed polystream needs: its version, its license, the stack's sources as package
data, and lock files that match the declared dependencies."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import re
import tomllib
from pathlib import Path

from typer.testing import CliRunner

import polystream
from polystream.cli import app
from polystream.stack.base import infra_dir

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE = Path(polystream.__file__).resolve().parent


def test_version_option_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"polystream {polystream.__version__}"
    assert importlib.metadata.version("polystream") == polystream.__version__


def test_license_file_is_the_apache_2_text() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_supported_pythons_are_declared() -> None:
    project = PYPROJECT["project"]
    assert project["requires-python"] == ">=3.11,<3.14"
    for minor in (11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in project["classifiers"]


def test_every_stack_source_is_package_data() -> None:
    src = infra_dir()
    assert src.parent == PACKAGE / "stack"
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["polystream"]
    files = [p.relative_to(PACKAGE).as_posix() for p in src.rglob("*")
             if p.is_file() and "target" not in p.parts and "__pycache__" not in p.parts]
    assert len(files) >= 10
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert unshipped == []


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for req in requirements:
        name, version = re.split(r"==", re.sub(r"\[.*?\]", "", req))
        pins[name.lower().replace("_", "-")] = version.strip()
    return pins


def _locked(path: Path) -> dict[str, str]:
    text = path.read_text()
    entries = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.MULTILINE)
    # Every pinned requirement carries hashes (pip --require-hashes refuses it otherwise).
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.split("\n", 2)[2])
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)
    return {name.lower().replace("_", "-"): version for name, version in entries}


def test_lock_files_pin_the_declared_versions() -> None:
    project = PYPROJECT["project"]
    runtime = _pins(project["dependencies"])
    dev = _pins(project["optional-dependencies"]["dev"])
    lock = _locked(ROOT / "requirements.lock")
    dev_lock = _locked(ROOT / "requirements-dev.lock")
    assert {n: lock.get(n) for n in runtime} == runtime
    assert {n: dev_lock.get(n) for n in runtime | dev} == runtime | dev
    assert set(lock) <= set(dev_lock)
