"""PostgreSQL 15 from Debian's package, run from a data folder of the stack's own.

The Debian cluster (`pg_ctlcluster 15 main`) is left alone: the stack runs `postgres` directly as
the `postgres` user (PostgreSQL refuses to run as root) so that its data, socket and logs stay
under the stack folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from polystream.settings import PostgresSettings
from polystream.stack.base import Server
from polystream.stack.process import StackError
from polystream.stack.provision import apt_install, run

PG_MAJOR = "15"
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
OS_USER = "postgres"


class PostgresServer(Server):
    name = "postgres"
    # Fast shutdown: TERM would be a "smart" one, which waits for every client (FerretDB, the
    # API's pool) to disconnect, so a stop would end in KILL and crash recovery.
    stop_signal = signal.SIGINT

    @property
    def cfg(self) -> PostgresSettings:
        return self.settings.postgres

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base() / "sock"

    def _base(self) -> Path:
        # The postgres user must be able to reach its data folder. A checkout under a folder
        # it cannot enter (/root/…) gets its PostgreSQL data in /var/lib/polystream instead,
        # keyed by the stack folder so that two checkouts never share one.
        if _user_can_enter(OS_USER, self.dir.parent):
            return self.dir
        key = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        return Path("/var/lib/polystream") / key / "postgres"

    def provision(self) -> None:
        if self.cfg.sslmode in ("require", "verify-ca", "verify-full"):
            raise StackError(f"postgres: the managed server has no TLS certificate, so sslmode "
                             f"{self.cfg.sslmode} cannot reach it; set "
                             "POLYSTREAM_POSTGRES__MANAGED=false for a server that has one")
        if not (PG_BIN / "postgres").is_file():
            apt_install([f"postgresql-{PG_MAJOR}"], log=self.provision_log,
                        progress=self.progress)
        if not (PG_BIN / "postgres").is_file():
            raise StackError(f"postgres: {PG_BIN}/postgres missing after installing the package")

    def prepare(self) -> None:
        super().prepare()
        base = self._base()
        if base != self.dir:
            (self.dir / "WHERE_IS_THE_DATA").write_text(f"{base}\n")
        base.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(base, OS_USER, OS_USER)
        shutil.chown(self.socket_dir, OS_USER, OS_USER)
        if (self.data_dir / "PG_VERSION").is_file():
            return
        run(
            ["runuser", "-u", OS_USER, "--", str(PG_BIN / "initdb"), "-D", str(self.data_dir),
             "-U", OS_USER, "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
             "--no-locale"],
            what="postgres: initdb", log=self.provision_log,
        )

    def run_as(self) -> str | None:
        return OS_USER

    def command(self) -> list[str]:
        return [
            str(PG_BIN / "postgres"), "-D", str(self.data_dir),
            "-p", str(self.cfg.port),
            "-c", f"listen_addresses={self.cfg.host}",
            "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "max_connections=200",
            "-c", "shared_buffers=256MB",
            "-c", "logging_collector=off",
        ]

    def _superuser(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(host=str(self.socket_dir), port=self.cfg.port, user=OS_USER,
                               dbname="postgres", autocommit=True, connect_timeout=3)

    def ready(self) -> None:
        with self._superuser() as conn:
            conn.execute("SELECT 1")

    def after_start(self) -> None:
        """Create the application role and databases named in the settings (idempotent)."""
        role = self.cfg.user
        pw = self.cfg.password.get_secret_value()
        with self._superuser() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(pw)))
            for db in (self.cfg.database, self.settings.mongo.ferretdb_backend_database):
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
                    continue
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(db), sql.Identifier(role)))

    def probe(self) -> str:
        with psycopg.connect(self.cfg.dsn(), connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {str(row[0]).split()[0] if row else '?'}"


def _user_can_enter(user: str, path: Path) -> bool:
    if os.geteuid() != 0:
        return True
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(path)],
                          check=False).returncode == 0
