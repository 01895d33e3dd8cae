"""Redis over TLS with an ACL user, as a managed service runs it (`rediss://`, username):
the sinks' and the API's clients all come from `RedisSettings.url`.

A throwaway redis-server listens only on a TLS port with a certificate made by the test, and
its default user is disabled, so a client without TLS or without the ACL user gets nowhere.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from polystream import bootstrap
from polystream.domain.events import Receipt, ReceiptStatus, Sink
from polystream.domain.examples import example_event
from polystream.settings import RedisSettings, Settings
from polystream.sinks.redis_live import RedisLiveStore
from smoke.certs import make_ca, make_server_cert

pytestmark = pytest.mark.stack

USER, PASSWORD = "polystream-app", "tls-only-redis-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server missing: run `polystream stack up` first")
    folder = tmp_path_factory.mktemp("redis-tls")
    ca = make_ca(folder, "ca")
    cert, key = make_server_cert(folder, "ca")
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(folder),
         "--user", "default", "off",
         "--user", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"TLS redis-server did not start (code {proc.poll()})")
                time.sleep(0.05)
        yield port, ca
    finally:
        proc.terminate()
        proc.wait(10)


def _settings(port: int, ca: Path, **changes: object) -> RedisSettings:
    values: dict[str, object] = {"port": port, "tls": True, "ca_file": ca, "username": USER,
                                 "password": PASSWORD, "socket_timeout_s": 3, "managed": False}
    values.update(changes)
    return RedisSettings.model_validate(values)


def test_the_sink_store_works_over_tls_as_an_acl_user(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    settings = _settings(port, ca)
    assert settings.url.startswith("rediss://polystream-app:")
    store = RedisLiveStore.from_settings(settings, prefix="tls")
    try:
        event = example_event("flag.set")
        [outcome] = store.apply([event])
        assert outcome.status is ReceiptStatus.STORED
    finally:
        store.close()
    client = redis.Redis.from_url(settings.url)
    try:
        assert client.acl_whoami() == USER
        assert client.connection_pool.connection_kwargs["ssl_ca_certs"] == str(ca)
        assert client.keys("tls:*")
    finally:
        client.close()


def test_the_receipt_log_uses_the_same_tls_settings(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    receipts = bootstrap.receipt_log(Settings(redis=_settings(port, ca)))
    event = example_event("flag.set")
    receipt = Receipt(event_id=event.event_id, event_type=event.type, sink=Sink.REDIS,
                      status=ReceiptStatus.STORED, processed_at=datetime.now(UTC))
    try:
        receipts.record([receipt])
        assert receipts.get(event.event_id) == [receipt]
    finally:
        receipts.close()


def test_without_tls_or_the_acl_user_nothing_gets_in(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    plain = redis.Redis.from_url(_settings(port, ca, tls=False).url, socket_timeout=2,
                                 socket_connect_timeout=2)
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    as_default = redis.Redis.from_url(_settings(port, ca, username=None).url)
    with pytest.raises(redis.AuthenticationError):
        as_default.ping()
    wrong_ca = redis.Redis.from_url(
        _settings(port, make_ca(ca.parent, "other-ca")).url, socket_timeout=2)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        wrong_ca.ping()
