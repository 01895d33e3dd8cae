"""The toolchain helpers of the stack: Go module hashes, the pinned Go download, JDK lookup."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from polystream.stack import toolchains
from polystream.stack.process import StackError
from polystream.stack.toolchains import (
    fetch_go_toolchain,
    find_jdk,
    module_h1,
    require_jdk,
    required_go,
)


def test_module_h1_matches_the_go_checksum_database(tmp_path: Path) -> None:
    # sum.golang.org: golang.org/toolchain v0.0.1-go1.27.3.linux-amd64/go.mod h1:8wlg68Nq…
    # (the hash of a one-file tree named go.mod holding the module's go.mod).
    z = tmp_path / "mod.zip"
    with zipfile.ZipFile(z, "w") as archive:
        archive.writestr("go.mod", "module golang.org/toolchain\n")
    assert module_h1(z) == "h1:8wlg68NqwW7eMnI1aABk/C2pDYXj8mrMY4TyRfiLeS0="


def test_required_go_reads_the_go_line(tmp_path: Path) -> None:
    mod = tmp_path / "go.mod"
    mod.write_text("module x\n\ngo 1.24.0\n\nrequire y v1.0.0\n")
    assert required_go(mod) == (1, 24, 0)
    mod.write_text("module x\n\ngo 1.22\n")
    assert required_go(mod) == (1, 22, 0)


def _fake_toolchain_zip(downloads: Path) -> tuple[Path, str]:
    """A toolchain-shaped module zip where the stack looks for the pinned one, and its hash."""
    version, arch = toolchains.GO_TOOLCHAIN, toolchains._arch()
    downloads.mkdir()
    path = downloads / f"golang.org-toolchain@v0.0.1-{version}.linux-{arch}.zip"
    prefix = f"golang.org/toolchain@v0.0.1-{version}.linux-{arch}/"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(prefix + "bin/go", "#!/bin/sh\necho go1.99.0\n")
        archive.writestr(prefix + "pkg/tool/linux_amd64/compile", "binary")
        archive.writestr(prefix + "src/fmt/print.go", "package fmt\n")
    return path, module_h1(path)


def test_a_download_that_does_not_match_the_pinned_hash_is_refused_and_deleted(
        tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    zip_path, _ = _fake_toolchain_zip(downloads)  # not the real toolchain
    with pytest.raises(StackError, match="does not match the pinned"):
        fetch_go_toolchain(into=tmp_path / "tc", downloads=downloads)
    assert not zip_path.exists()
    assert not (tmp_path / "tc" / toolchains.GO_TOOLCHAIN / "bin" / "go").exists()


def test_a_verified_toolchain_is_unpacked_with_executable_tools(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    downloads = tmp_path / "downloads"
    zip_path, h1 = _fake_toolchain_zip(downloads)
    monkeypatch.setitem(toolchains.GO_TOOLCHAIN_H1, toolchains._arch(), h1)
    go = Path(fetch_go_toolchain(into=tmp_path / "tc", downloads=downloads))
    root = go.parent.parent
    assert go.read_text().startswith("#!/bin/sh")
    assert go.stat().st_mode & stat.S_IXUSR
    assert (root / "pkg/tool/linux_amd64/compile").stat().st_mode & stat.S_IXUSR
    assert not (root / "src/fmt/print.go").stat().st_mode & stat.S_IXUSR
    # Unpacked once: a second call finds the verified tree without reading the zip again.
    zip_path.unlink()
    assert fetch_go_toolchain(into=tmp_path / "tc", downloads=downloads) == str(go)


def _jvm(root: Path, name: str, *, javac: bool) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    for tool in ("java", "javac") if javac else ("java",):
        (home / "bin" / tool).write_text("#!/bin/sh\n")
        (home / "bin" / tool).chmod(0o755)
    return home


def test_a_jre_is_not_a_jdk_and_the_jdk_package_is_installed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jvms = tmp_path / "jvm"
    jre = _jvm(jvms, "java-17-openjdk-amd64", javac=False)
    monkeypatch.setenv("PATH", str(jre / "bin"))  # `java` works, `javac` does not exist
    monkeypatch.setenv("JAVA_HOME", str(jre))
    assert find_jdk((str(jvms),)) is None
    installed: list[list[str]] = []

    def fake_apt(packages: list[str], **_: object) -> None:
        installed.append(list(packages))
        (jre / "bin" / "javac").write_text("#!/bin/sh\n")
        (jre / "bin" / "javac").chmod(0o755)

    monkeypatch.setattr(toolchains, "apt_install", fake_apt)
    assert require_jdk(log=tmp_path / "log", jvm_roots=(str(jvms),)) == jre
    assert installed == [[toolchains.JDK_APT_PACKAGE]]


def test_an_existing_jdk_is_found_without_installing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jvms = tmp_path / "jvm"
    jdk = _jvm(jvms, "temurin-17-jdk", javac=True)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("JAVA_HOME", raising=False)

    def no_apt(*_: object, **__: object) -> None:
        raise AssertionError("apt must not run")

    monkeypatch.setattr(toolchains, "apt_install", no_apt)
    assert require_jdk(log=tmp_path / "log", jvm_roots=(str(jvms),)) == jdk
