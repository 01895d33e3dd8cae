"""Getting server software onto the machine from package registries only.

Each build is cached behind a stamp file holding a hash of its inputs, so a second `up` skips
straight to starting (the registries' own caches, ~/.m2 and the Go build cache, make even a
rebuild fast).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from polystream.stack.process import StackError

# A long step says it is still alive this often.
HEARTBEAT_S = 10.0

_apt_lock = threading.Lock()
_apt_updated = False


def run(argv: Sequence[str], *, what: str, log: Path, cwd: Path | None = None,
        env: dict[str, str] | None = None, progress: Callable[[str], None] | None = None,
        unit: str | None = None, heartbeat_s: float = HEARTBEAT_S) -> None:
    """Run a provisioning command, appending its output to ``log``; raise naming ``what``.

    With ``progress``, a long command says every ``heartbeat_s`` how long it has run and, when
    each output line is one ``unit`` of work, how many it did: a cold build is never a silent
    minute.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        start_size = out.tell()
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(
                list(argv), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            raise StackError(f"{what}: command not found: {argv[0]}") from exc
        while True:
            try:
                returncode = proc.wait(timeout=heartbeat_s if progress else None)
                break
            except subprocess.TimeoutExpired:
                if progress is not None:
                    done = f", {_lines_since(log, start_size)} {unit}" if unit else ""
                    progress(f"{what}: {time.monotonic() - t0:.0f}s so far{done}")
    if returncode != 0:
        raise StackError(f"{what}: `{' '.join(argv)}` failed with code {returncode}; "
                         f"see {log}")
    if progress is not None and time.monotonic() - t0 >= heartbeat_s:
        progress(f"{what}: done in {time.monotonic() - t0:.1f}s")


def _lines_since(log: Path, offset: int) -> int:
    try:
        with log.open("rb") as f:
            f.seek(offset)
            return f.read().count(b"\n")
    except OSError:
        return 0


def apt_install(packages: Iterable[str], *, log: Path,
                progress: Callable[[str], None] | None = None) -> None:
    """Install Debian packages (as root), running `apt-get update` once per process."""
    global _apt_updated
    pkgs = list(packages)
    if os.geteuid() != 0:
        raise StackError(f"installing {' '.join(pkgs)} needs root (apt-get); install them "
                         "yourself or run `stack up` as root")
    if shutil.which("apt-get") is None:
        raise StackError(f"{' '.join(pkgs)} missing and no apt-get on this machine")
    # RUNLEVEL=1 keeps the packages' init scripts from starting system-wide copies of the
    # servers on our ports; the stack runs its own instances.
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    with _apt_lock:
        if not _apt_updated:
            run(["apt-get", "update", "-q"], what="apt-get update", log=log, env=env,
                progress=progress)
            _apt_updated = True
        if progress is not None:
            progress(f"apt-get install {' '.join(pkgs)}")
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *pkgs],
            what=f"apt-get install {' '.join(pkgs)}", log=log, env=env, progress=progress)


def inputs_hash(paths: Iterable[Path], *extra: str) -> str:
    digest = hashlib.sha256()
    for p in sorted(paths):
        digest.update(p.name.encode())
        digest.update(p.read_bytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()


def stamp_fresh(stamp: Path, digest: str) -> bool:
    try:
        return stamp.read_text().strip() == digest
    except FileNotFoundError:
        return False


def write_stamp(stamp: Path, digest: str) -> None:
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")


def require_tool(name: str, *, apt_package: str, log: Path,
                 progress: Callable[[str], None] | None = None) -> str:
    found = shutil.which(name)
    if found is None:
        apt_install([apt_package], log=log, progress=progress)
        found = shutil.which(name)
    if found is None:
        raise StackError(f"`{name}` is still missing after installing {apt_package}")
    return found
