"""PostgreSQL with TLS required, as a managed service runs it: the API's pool and a sink reach
it through the settings' `sslmode`/`sslrootcert`, and nothing gets in without TLS.

The test makes its own certificate authority and server certificate (`certs.py`), starts a
throwaway cluster with `pg_ctl` on a free port whose pg_hba.conf rejects every non-TLS TCP
connection, and stops it afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from polystream import bootstrap
from polystream.domain.events import ReceiptStatus, Sink
from polystream.domain.examples import example_event
from polystream.runtime.retry import ConfigurationError
from polystream.settings import PostgresSettings, Settings
from polystream.sinks.postgres.pool import open_pool
from polystream.stack.postgres import OS_USER, PG_BIN
from smoke.certs import make_ca, make_server_cert

pytestmark = pytest.mark.stack

PASSWORD = "tls-only-test-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; the stack runs it as the `postgres` user too.
    return ["runuser", "-u", OS_USER, "--", *argv] if os.geteuid() == 0 else argv


class TlsPostgres:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.port = _free_port()
        self.certs = base / "certs"

    def start(self) -> None:
        self.certs.mkdir()
        make_ca(self.certs, "ca")
        make_ca(self.certs, "other-ca")
        make_server_cert(self.certs, "ca")
        if os.geteuid() == 0:
            shutil.chown(self.base, OS_USER, OS_USER)
            for path in self.certs.iterdir():
                shutil.chown(path, OS_USER, OS_USER)
        (self.certs / "server.key").chmod(0o600)
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U",
                                     OS_USER, "--auth-local=trust", "-E", "UTF8",
                                     "--no-locale"]),
                       check=True, capture_output=True, timeout=120)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.base}'\n"
                "ssl = on\n"
                f"ssl_cert_file = '{self.certs / 'server.crt'}'\n"
                f"ssl_key_file = '{self.certs / 'server.key'}'\n"
                "password_encryption = 'scram-sha-256'\n"
                "max_connections = 30\nshared_buffers = 16MB\n")
        # TCP only over TLS; a connection without it is refused by the server itself.
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostnossl all all 0.0.0.0/0 reject\n")
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w",
                                     "-t", "60", "-l", str(self.base / "server.log"), "start"]),
                       check=True, capture_output=True, timeout=120)
        with self.superuser() as conn:
            conn.execute(f"CREATE ROLE polystream LOGIN PASSWORD '{PASSWORD}'")
            conn.execute("CREATE DATABASE polystream OWNER polystream")

    def superuser(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(host=str(self.base), port=self.port, user=OS_USER,
                               dbname="postgres", autocommit=True)

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                                     "-w", "stop"]), check=False, capture_output=True,
                       timeout=120)

    def settings(self, **changes: object) -> PostgresSettings:
        values: dict[str, object] = {
            "host": "127.0.0.1", "port": self.port, "password": PASSWORD,
            "sslmode": "verify-full", "sslrootcert": self.certs / "ca.crt",
            "connect_timeout_s": 3, "pool_size": 3, "managed": False}
        values.update(changes)
        return PostgresSettings.model_validate(values)


@pytest.fixture(scope="module")
def server() -> Iterator[TlsPostgres]:
    if not (PG_BIN / "pg_ctl").is_file():
        pytest.fail(f"PostgreSQL binaries missing in {PG_BIN}: run `polystream stack up` first")
    # Not pytest's tmp_path: the postgres user must be able to enter every parent folder.
    base = Path(tempfile.mkdtemp(prefix="polystream-pg-tls-"))
    base.chmod(0o755)
    pg = TlsPostgres(base)
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def _tls_clients(pg: TlsPostgres) -> list[tuple[str, bool, str | None]]:
    with pg.superuser() as conn:
        rows = conn.execute(
            "SELECT a.application_name, s.ssl, s.version FROM pg_stat_activity a "
            "JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'polystream'").fetchall()
    return [(str(name), bool(ssl), None if version is None else str(version))
            for name, ssl, version in rows]


def test_the_api_pool_connects_over_verified_tls(server: TlsPostgres) -> None:
    pool = open_pool(server.settings(), application_name="tls-test-api", min_size=2, wait=True)
    try:
        with pool.connection() as conn:
            row = conn.execute(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row is not None and row[0] is True and str(row[1]).startswith("TLS")
        assert pool.get_stats()["pool_size"] == 2
        api = [c for c in _tls_clients(server) if c[0] == "tls-test-api"]
        assert len(api) == 2 and all(ssl for _, ssl, _ in api), api
    finally:
        pool.close()


def test_a_sink_migrates_and_stores_over_verified_tls(server: TlsPostgres) -> None:
    # The worker's own wiring: Alembic migrations (SQLAlchemy), then the psycopg store.
    store = bootstrap.store(Sink.POSTGRES, Settings(postgres=server.settings()))
    try:
        event = example_event("user.registered", user_id="tls-user-1",
                              email="tls-user-1@example.com")
        [outcome] = store.apply([event])
        assert outcome.status is ReceiptStatus.STORED
        clients = _tls_clients(server)
        assert any(name == "polystream-postgres-sink" and ssl for name, ssl, _ in clients), clients
    finally:
        store.close()
    with psycopg.connect(server.settings().dsn()) as conn:
        found = conn.execute("SELECT email FROM users WHERE user_id = 'tls-user-1'").fetchone()
    assert found == ("tls-user-1@example.com",)


def test_without_tls_the_server_refuses_every_client(server: TlsPostgres) -> None:
    plain = server.settings(sslmode="disable", sslrootcert=None)
    refused = r"pg_hba\.conf rejects connection .* no encryption"
    with pytest.raises(psycopg.OperationalError, match=refused):
        psycopg.connect(plain.dsn()).close()
    with pytest.raises(PoolTimeout):
        open_pool(plain, application_name="tls-test-plain", wait=True)
    with pytest.raises(ConfigurationError, match=refused):
        bootstrap.store(Sink.POSTGRES, Settings(postgres=plain))


def test_a_certificate_from_another_authority_is_refused(server: TlsPostgres) -> None:
    wrong_ca = server.settings(sslrootcert=server.certs / "other-ca.crt")
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(wrong_ca.dsn()).close()
    with pytest.raises(ConfigurationError, match="certificate verify failed"):
        bootstrap.store(Sink.POSTGRES, Settings(postgres=wrong_ca))
