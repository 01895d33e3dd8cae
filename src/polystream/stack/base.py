"""What every server of the stack has in common: where its files live and its life cycle."""

from __future__ import annotations

import os
import signal
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from polystream.settings import Settings
from polystream.stack.process import ManagedProcess, ProcessRecord, StackError
from polystream.stack.provision import inputs_hash, stamp_fresh, write_stamp


def infra_dir() -> Path:
    """The non-Python sources of the JVM/Go servers (pom files, launchers), shipped inside the
    package so that an installed wheel provisions exactly like a checkout."""
    here = Path(__file__).resolve().parent / "infra"
    if not (here / "kafka" / "pom.xml").is_file():
        raise StackError(f"the stack's sources are missing from the installed package ({here}); "
                         "reinstall polystream")
    return here


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


class ServerSettings(Protocol):
    """What the stack reads from a server's section of the settings."""

    @property
    def managed(self) -> bool: ...

    @property
    def host_port(self) -> tuple[str, int]: ...


@dataclass(frozen=True)
class Health:
    name: str
    address: str
    managed: bool
    healthy: bool
    version: str = ""
    detail: str = ""
    pid: int | None = None


class Server(ABC):
    """One server of the stack.

    Subclasses say how to install it, prepare its data folder once, build its command line and
    probe it with a real request through the Python client the project uses.
    """

    name: str = ""
    depends_on: tuple[str, ...] = ()
    #: What `down` sends first (KILL follows after the stop timeout).
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(self, settings: Settings, home: Path) -> None:
        self.settings = settings
        self.home = home
        self.dir = home / self.name
        self.log_file = home / "logs" / f"{self.name}.log"
        self.provision_log = home / "logs" / f"{self.name}-provision.log"
        self.process = ManagedProcess(self.name, home / "run", self.log_file)
        # Set by the Stack: one line per provisioning step (downloads, builds, heartbeats).
        self.progress: Callable[[str], None] = _quiet

    # --- to implement -------------------------------------------------------------------
    @property
    @abstractmethod
    def cfg(self) -> ServerSettings:
        """This server's section of the settings (subclasses narrow the type)."""

    @abstractmethod
    def provision(self) -> None:
        """Install or build what is missing; cheap when everything is in place."""

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def probe(self) -> str:
        """One real request; returns the server's version, raises on any failure."""

    def build_once(self, inputs: Iterable[Path], build: Callable[[], None], *, built: bool,
                   salt: str = "") -> None:
        """Run ``build`` unless it already ran on these very inputs (the stamp in ``build/``
        holds their hash) and what it makes is still there (``built``)."""
        stamp = self.home / "build" / f"{self.name}.stamp"
        digest = inputs_hash(inputs, *([salt] if salt else []))
        if stamp_fresh(stamp, digest) and built:
            return
        build()
        write_stamp(stamp, digest)

    def prepare(self) -> None:
        """Create the data folder and configuration (idempotent)."""
        self.dir.mkdir(parents=True, exist_ok=True)

    def ready(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Answers at all (before `after_start`); the probe itself is enough by default."""

    def after_start(self) -> None:  # noqa: B027 - an optional hook
        """Bootstrap that needs the running server (users, databases)."""

    def run_as(self) -> str | None:
        return None

    def environment(self) -> dict[str, str] | None:
        return None

    def ports(self) -> list[tuple[str, int]]:
        host, _, port = self.address.rpartition(":")
        return [(host, int(port))]

    # --- shared -------------------------------------------------------------------------
    @property
    def managed(self) -> bool:
        return self.cfg.managed

    @property
    def address(self) -> str:
        host, port = self.cfg.host_port
        return f"{host}:{port}"

    def health(self) -> Health:
        rec = self.process.running() if self.managed else None
        try:
            version = self.probe()
        except Exception as exc:
            return Health(self.name, self.address, self.managed, False,
                          detail=_one_line(exc), pid=rec.pid if rec else None)
        return Health(self.name, self.address, self.managed, True, version,
                      pid=rec.pid if rec else None)

    def start(self) -> ProcessRecord:
        for host, port in self.ports():
            if port_open(host, port):
                raise StackError(
                    f"{self.name}: port {host}:{port} is taken by a process the stack did not "
                    f"start; stop it or point the settings at another port")
        return self.process.spawn(self.command(), cwd=self.dir, env=self.environment(),
                                  user=self.run_as())

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(text[-lines:])


def _quiet(_: str) -> None:
    pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def java_bin() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").is_file():
        return str(Path(java_home, "bin", "java"))
    return "java"
