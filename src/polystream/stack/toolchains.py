"""Compilers the stack builds with: a Go toolchain for FerretDB and a JDK for the OpenSearch
launcher, provisioned when the machine lacks them.

Go: Debian 12's `golang-go` is 1.19, older than FerretDB's `go.mod` needs and too old to
switch toolchains by itself (`GOTOOLCHAIN` needs 1.21+). The Go module proxy serves the
official toolchains as the module `golang.org/toolchain`; the stack downloads the pinned one
into its download cache (kept across stack folders and CI runs), checks the module's `h1:` hash
(the one `go.sum` and the checksum database use), and unpacks it under the stack folder.

JDK: the launcher is compiled, so the check is for `javac`; a JRE's `java` is not enough.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import os
import platform
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import certifi

from polystream.stack.process import StackError
from polystream.stack.provision import apt_install

Progress = Callable[[str], None]

GO_TOOLCHAIN = "go1.27.3"
# `h1:` hashes of golang.org/toolchain@v0.0.1-go1.27.3.linux-<arch>, as recorded in the Go
# checksum database (sum.golang.org); a download that does not match is refused.
GO_TOOLCHAIN_H1 = {
    "amd64": "h1:r0ub+FnqzZxoWm/dSUOI9DcIqYWn/mNYGFJcv7PyBzs=",
    "arm64": "h1:VY4gDzfxOrsM17J2qtgZgiAIsWhp7XWK1jMfE3kXV0s=",
}
DEFAULT_GOPROXY = "https://proxy.golang.org"
JDK_APT_PACKAGE = "openjdk-17-jdk-headless"


def _noop(_: str) -> None:
    pass


# ---------------------------------------------------------------------------------------- Go
def go_version(go: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a `go` binary, None when it does not run."""
    try:
        out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                             check=False, timeout=30,
                             env={**os.environ, "GOTOOLCHAIN": "local"}).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return _parse_go_version(out)


def _parse_go_version(text: str) -> tuple[int, int, int] | None:
    match = re.match(r"(?:go)?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def required_go(go_mod: Path) -> tuple[int, int, int]:
    """The `go` line of a go.mod: the oldest Go that builds the module."""
    for line in go_mod.read_text().splitlines():
        if line.startswith("go "):
            found = _parse_go_version(line[3:])
            if found is not None:
                return found
    raise StackError(f"{go_mod} has no `go` line")


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine)


def _goproxy() -> str:
    # The first real proxy of GOPROXY (a list separated by , or |), like the go command.
    for entry in re.split(r"[,|]", os.environ.get("GOPROXY", "")):
        entry = entry.strip().rstrip("/")
        if entry.startswith(("https://", "http://")):
            return entry
    return DEFAULT_GOPROXY


def module_h1(zip_path: Path) -> str:
    """Go's `h1:` hash of a module zip (golang.org/x/mod/sumdb/dirhash.Hash1)."""
    summary = hashlib.sha256()
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(i.filename for i in archive.infolist() if not i.is_dir())
        for name in names:
            digest = hashlib.sha256()
            with archive.open(name) as member:
                for chunk in iter(lambda: member.read(1 << 20), b""):
                    digest.update(chunk)
            summary.update(f"{digest.hexdigest()}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def _tls_context() -> ssl.SSLContext:
    # The system's CAs plus certifi's (a dependency of httpx): a fresh Debian has no
    # ca-certificates package until something installs it, and a corporate CA lives only in
    # the system store.
    context = ssl.create_default_context()
    context.load_verify_locations(certifi.where())
    return context


def _download(url: str, dest: Path, progress: Progress) -> None:
    part = dest.with_name(dest.name + ".part")
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=60, context=_tls_context()) as resp, \
                part.open("wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            size_text = f"{total / 1e6:.1f} MB" if total else "unknown size"
            progress(f"downloading {url} ({size_text})")
            done, last = 0, time.monotonic()
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if time.monotonic() - last >= 5:
                    last = time.monotonic()
                    share = f" of {total / 1e6:.1f}" if total else ""
                    progress(f"downloaded {done / 1e6:.1f}{share} MB")
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise StackError(f"downloading {url} failed: {exc}") from exc
    part.replace(dest)
    took = time.monotonic() - t0
    progress(f"downloaded {done / 1e6:.1f} MB in {took:.1f}s")


def _unpack(zip_path: Path, prefix: str, dest: Path) -> None:
    """Unpack the module's files (under ``prefix``) into ``dest`` atomically, with modes."""
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest.parent))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for info in archive.infolist():
                if not info.filename.startswith(prefix) or info.is_dir():
                    continue
                rel = info.filename[len(prefix):]
                target = (staging / rel).resolve()
                if staging.resolve() not in target.parents:
                    raise StackError(f"{zip_path}: refusing path {info.filename}")
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                mode = (info.external_attr >> 16) & 0o777
                # Module zips record no modes; the go command makes its tools executable.
                if mode & 0o111 or "/bin/" in f"/{rel}" or "/pkg/tool/" in f"/{rel}":
                    target.chmod(0o755)
        if dest.exists():
            shutil.rmtree(dest)
        staging.replace(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def fetch_go_toolchain(*, into: Path, downloads: Path, progress: Progress = _noop,
                       version: str = GO_TOOLCHAIN) -> str:
    """The `go` binary of the pinned toolchain, unpacked under ``into`` (fetched into
    ``downloads`` first when not there yet; verified against its pinned hash either way)."""
    arch = _arch()
    expected = GO_TOOLCHAIN_H1.get(arch) if version == GO_TOOLCHAIN else None
    if expected is None:
        raise StackError(f"no pinned Go toolchain {version} for linux-{arch}; install Go "
                         "yourself and put it on PATH")
    root = into / version
    go = root / "bin" / "go"
    marker = root / ".polystream-verified"
    if go.is_file() and marker.is_file() and marker.read_text().strip() == expected:
        return str(go)
    module_version = f"v0.0.1-{version}.linux-{arch}"
    downloads.mkdir(parents=True, exist_ok=True)
    zip_path = downloads / f"golang.org-toolchain@{module_version}.zip"
    if zip_path.is_file():
        progress(f"Go toolchain {version}: cached download {zip_path} "
                 f"({zip_path.stat().st_size / 1e6:.1f} MB)")
    else:
        url = f"{_goproxy()}/golang.org/toolchain/@v/{module_version}.zip"
        _download(url, zip_path, progress)
    progress(f"Go toolchain {version}: verifying the module hash")
    actual = module_h1(zip_path)
    if actual != expected:
        zip_path.unlink(missing_ok=True)
        raise StackError(f"Go toolchain {module_version}: hash {actual} does not match the "
                         f"pinned {expected}; the download was deleted")
    t0 = time.monotonic()
    into.mkdir(parents=True, exist_ok=True)
    _unpack(zip_path, f"golang.org/toolchain@{module_version}/", root)
    marker.write_text(expected + "\n")
    progress(f"Go toolchain {version}: verified {expected}, unpacked in "
             f"{time.monotonic() - t0:.1f}s")
    if go_version(str(go)) is None:
        raise StackError(f"the unpacked Go toolchain does not run: {go}")
    return str(go)


def find_go(minimum: tuple[int, int, int], *, into: Path, downloads: Path,
            progress: Progress = _noop) -> str:
    """A `go` at least ``minimum``: the one on PATH if new enough, else the pinned toolchain."""
    system = shutil.which("go")
    have = go_version(system) if system else None
    if system and have is not None and have >= minimum:
        return system
    found = f"go{'.'.join(map(str, have))} at {system}" if have else "no Go on PATH"
    progress(f"needs Go >= {'.'.join(map(str, minimum))}, found {found}; using the pinned "
             f"toolchain {GO_TOOLCHAIN}")
    go = fetch_go_toolchain(into=into, downloads=downloads, progress=progress)
    got = go_version(go)
    if got is None or got < minimum:
        raise StackError(f"the pinned Go toolchain {GO_TOOLCHAIN} is older than the "
                         f"{'.'.join(map(str, minimum))} go.mod needs")
    return go


# --------------------------------------------------------------------------------------- JDK
def _jdk_of(javac: str | None) -> Path | None:
    if javac is None:
        return None
    real = Path(javac).resolve()
    home = real.parent.parent
    return home if (home / "bin" / "java").is_file() else None


def find_jdk(jvm_roots: tuple[str, ...] = ("/usr/lib/jvm",)) -> Path | None:
    """A JDK home (a folder whose bin/ has `javac` and `java`): JAVA_HOME, PATH, then the
    system's JVM folders. A JRE does not count."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "javac").is_file():
        return _jdk_of(str(Path(java_home) / "bin" / "javac"))
    on_path = _jdk_of(shutil.which("javac"))
    if on_path is not None:
        return on_path
    for root in jvm_roots:
        for javac in sorted(glob.glob(f"{root}/*17*/bin/javac")) + sorted(
                glob.glob(f"{root}/*/bin/javac")):
            home = _jdk_of(javac)
            if home is not None:
                return home
    return None


def require_jdk(*, log: Path, progress: Progress = _noop,
                jvm_roots: tuple[str, ...] = ("/usr/lib/jvm",)) -> Path:
    """A JDK home, installing Debian's JDK 17 when only a JRE (or nothing) is there."""
    home = find_jdk(jvm_roots)
    if home is not None:
        return home
    progress(f"no Java compiler (javac) found; installing {JDK_APT_PACKAGE}")
    apt_install([JDK_APT_PACKAGE], log=log, progress=progress)
    home = find_jdk(jvm_roots)
    if home is None:
        raise StackError(f"`javac` is still missing after installing {JDK_APT_PACKAGE}")
    return home
