"""Settings for managed services reach every client that is built from them."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from pydantic import SecretStr, ValidationError

from polystream.audit.opensearch import OpenSearchAuditIndex, opensearch_client
from polystream.bus import admin
from polystream.bus.kafka import consumer_config, producer_config
from polystream.settings import (
    KafkaSettings,
    OpenSearchSettings,
    PostgresSettings,
    RedisSettings,
    Settings,
)
from polystream.stack.kafka import KafkaServer
from polystream.stack.postgres import PostgresServer
from polystream.stack.process import StackError
from polystream.stack.redis import RedisServer


def _sasl(tmp_path: Path) -> KafkaSettings:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection is made\n")
    return KafkaSettings(bootstrap_servers="b-1.example:9096,b-2.example:9096",
                         security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                         sasl_username="app", sasl_password=SecretStr("s3cret"), ca_file=ca)


def test_kafka_security_reaches_producer_consumer_and_admin(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = _sasl(tmp_path)
    expected = {"bootstrap.servers": "b-1.example:9096,b-2.example:9096",
                "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "app", "sasl.password": "s3cret",
                "ssl.ca.location": str(tmp_path / "ca.pem")}
    seen: list[dict[str, object]] = []
    monkeypatch.setattr(admin, "AdminClient", seen.append)
    admin._admin(kafka)
    for conf in (producer_config(kafka, "p"), consumer_config(kafka, "g", "c"), seen[0]):
        assert expected.items() <= conf.items()
    # librdkafka takes the names and values as they are, and reads the CA file at once: the
    # placeholder file above is refused by librdkafka itself.
    with pytest.raises(KafkaException, match=r"ssl\.ca\.location failed"):
        Producer(producer_config(kafka, "p"))


def test_plaintext_kafka_stays_as_it_was() -> None:
    conf = producer_config(KafkaSettings(), "p")
    assert conf["security.protocol"] == "PLAINTEXT"
    assert not any(k.startswith(("sasl.", "ssl.")) for k in conf)


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ValidationError, match="needs sasl_mechanism"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN")


def test_postgres_url_carries_tls_and_survives_any_password() -> None:
    pg = PostgresSettings(password=SecretStr("p@ss:/w?#"), sslmode="verify-full",
                          sslrootcert=Path("/etc/ca.pem"))
    dsn = pg.dsn()
    assert dsn.startswith("postgresql://polystream:p%40ss%3A%2Fw%3F%23@127.0.0.1:5432/")
    assert "sslmode=verify-full" in dsn and "sslrootcert=%2Fetc%2Fca.pem" in dsn
    import psycopg.conninfo

    parsed = psycopg.conninfo.conninfo_to_dict(dsn)
    assert parsed["password"] == "p@ss:/w?#" and parsed["sslrootcert"] == "/etc/ca.pem"
    assert pg.sqlalchemy_url().startswith("postgresql+psycopg://")


def test_redis_url_for_tls_and_acl_user() -> None:
    assert RedisSettings().url == "redis://127.0.0.1:6379/0"
    assert RedisSettings(password=SecretStr("x")).url == "redis://:x@127.0.0.1:6379/0"
    url = RedisSettings(host="cache.example", port=6380, username="app",
                        password=SecretStr("p w@"), tls=True, ca_file=Path("/ca.pem")).url
    assert url == "rediss://app:p%20w%40@cache.example:6380/0?ssl_ca_certs=%2Fca.pem"


def test_opensearch_credentials_ca_shards_and_replicas(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    cfg = OpenSearchSettings(url="https://search.example:9200", username="auditor",
                             password=SecretStr("pw"), ca_file=ca, shards=3, replicas=2)
    client = opensearch_client(cfg)
    conn = client.transport.get_connection()
    assert conn.use_ssl and conn.pool.ca_certs == str(ca)
    assert conn.pool.cert_reqs == "CERT_REQUIRED"
    assert conn.headers["authorization"] == "Basic " + base64.b64encode(b"auditor:pw").decode()
    settings = OpenSearchAuditIndex(cfg, client=client).template_body()["template"]["settings"]
    assert (settings["number_of_shards"], settings["number_of_replicas"]) == (3, 2)
    # An explicit argument (tests, benchmarks) still wins over the settings.
    assert OpenSearchAuditIndex(cfg, client=client, replicas=0).template_body()[
        "template"]["settings"]["number_of_replicas"] == 0


def test_the_managed_loopback_servers_refuse_settings_they_cannot_honour(
        tmp_path: Path) -> None:
    settings = Settings(
        postgres=PostgresSettings(sslmode="verify-full"),
        redis=RedisSettings(tls=True),
        kafka=KafkaSettings(security_protocol="SSL"),
    )
    for server_type in (PostgresServer, RedisServer, KafkaServer):
        with pytest.raises(StackError, match="MANAGED=false"):
            server_type(settings, tmp_path).provision()


def test_a_managed_redis_with_an_acl_user_gets_that_user(tmp_path: Path) -> None:
    settings = Settings(redis=RedisSettings(username="app", password=SecretStr("pw")))
    argv = RedisServer(settings, tmp_path).command()
    at = argv.index("--user")
    assert argv[at:at + 7] == ["--user", "app", "on", ">pw", "~*", "&*", "+@all"]
    assert "--requirepass" not in argv


def test_a_build_runs_again_only_when_its_inputs_change_or_its_output_is_gone(
        tmp_path: Path) -> None:
    server = RedisServer(Settings(), tmp_path)
    source = tmp_path / "main.go"
    source.write_text("one")
    builds: list[str] = []

    def build() -> None:
        builds.append(source.read_text())

    server.build_once([source], build, built=True)
    server.build_once([source], build, built=True)
    assert builds == ["one"]
    server.build_once([source], build, built=False)
    assert builds == ["one", "one"]
    source.write_text("two")
    server.build_once([source], build, built=True)
    server.build_once([source], build, built=True, salt="another flavour")
    assert builds == ["one", "one", "two", "two"]
