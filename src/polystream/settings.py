"""All configuration of polystream, read once in an entry point and passed down.

Every variable is ``POLYSTREAM_<SECTION>__<FIELD>`` (see ``.env.example``). A ``.env`` file in the
working directory is read too. Nothing here connects to anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlencode, urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def _userinfo(user: str, password: SecretStr | None) -> str:
    """``user:password`` for a URL, percent-encoded so any character is safe in either."""
    info = quote(user, safe="")
    if password is not None:
        info += ":" + quote(password.get_secret_value(), safe="")
    return info


class _HostAndPort(BaseModel):
    """A server addressed by a host and a port (the others are addressed by a URL)."""

    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)

    @property
    def host_port(self) -> tuple[str, int]:
        return self.host, self.port


class PostgresSettings(_HostAndPort):
    port: int = Field(5432, ge=1, le=65535)
    user: str = "polystream"
    password: SecretStr = SecretStr("polystream")
    database: str = "polystream"
    connect_timeout_s: float = Field(5.0, gt=0)
    # libpq's sslmode: a managed service wants "verify-full" with its CA in `sslrootcert`
    # ("require" encrypts but trusts any certificate). "prefer" is libpq's own default.
    sslmode: SslMode = "prefer"
    sslrootcert: Path | None = None
    # Most connections one process's pool keeps open (the API's reads); a sink uses one.
    pool_size: int = Field(10, ge=1, le=1000)
    # False: the server is the user's own; `stack up` only checks that it answers.
    managed: bool = True

    def dsn(self, database: str | None = None) -> str:
        """A libpq URL (psycopg 3) for this server, optionally for another database on it."""
        return (
            f"postgresql://{_userinfo(self.user, self.password)}@{self.host}:{self.port}/"
            f"{quote(database or self.database, safe='')}?{urlencode(self.libpq_params())}"
        )

    def libpq_params(self) -> dict[str, str]:
        params = {"connect_timeout": str(max(1, int(self.connect_timeout_s))),
                  "sslmode": self.sslmode}
        if self.sslrootcert is not None:
            params["sslrootcert"] = str(self.sslrootcert.expanduser())
        return params

    def sqlalchemy_url(self) -> str:
        return self.dsn().replace("postgresql://", "postgresql+psycopg://", 1)


class RedisSettings(_HostAndPort):
    port: int = Field(6379, ge=1, le=65535)
    db: int = Field(0, ge=0)
    # ACL user (Redis 6+); unset = the default user, authenticated by `password` alone.
    username: str | None = None
    password: SecretStr | None = None
    # TLS (a `rediss://` URL), verified against `ca_file` or the system's CAs.
    tls: bool = False
    ca_file: Path | None = None
    socket_timeout_s: float = Field(5.0, gt=0)
    # Every key the platform writes starts with "<key_prefix>:"; two deployments (or a test
    # run) can share one Redis with different prefixes.
    key_prefix: str = Field("ps", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    managed: bool = True

    @property
    def url(self) -> str:
        auth = ""
        if self.username or self.password:
            auth = _userinfo(self.username or "", self.password) + "@"
        query = ""
        if self.tls and self.ca_file is not None:
            query = "?" + urlencode({"ssl_ca_certs": str(self.ca_file.expanduser())})
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}{self.host}:{self.port}/{self.db}{query}"


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    # Port of the KRaft controller listener of the managed single node.
    controller_port: int = Field(9093, ge=1, le=65535)
    # Partitions of every topic when set; otherwise each topic's own default (TOPIC_PARTITIONS).
    partitions: int = Field(6, ge=1, le=1000)
    replication_factor: int = Field(1, ge=1)
    heap: str = "512m"
    request_timeout_s: float = Field(10.0, gt=0)
    # Consumer groups are "<group_prefix>-<sink>": another prefix is another deployment with
    # its own offsets over the same topics (a second environment, a test run).
    group_prefix: str = Field("polystream", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    # A managed cluster: SASL_SSL with SCRAM (or PLAIN) and the cluster's CA, for example.
    # Every producer, consumer and admin client gets these (`client_config`).
    security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    sasl_mechanism: KafkaSaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ca_file: Path | None = None
    managed: bool = True

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_") and not (
                self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism, "
                             "sasl_username and sasl_password")
        return self

    def consumer_group(self, sink: str) -> str:
        """The consumer group of a sink in this deployment."""
        return f"{self.group_prefix}-{sink}"

    def client_config(self) -> dict[str, str]:
        """librdkafka settings every client of the cluster needs: brokers and security."""
        conf = {"bootstrap.servers": self.bootstrap_servers,
                "security.protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL_"):
            assert self.sasl_mechanism and self.sasl_username and self.sasl_password
            conf.update({"sasl.mechanism": self.sasl_mechanism,
                         "sasl.username": self.sasl_username,
                         "sasl.password": self.sasl_password.get_secret_value()})
        if self.ca_file is not None and self.security_protocol in ("SSL", "SASL_SSL"):
            conf["ssl.ca.location"] = str(self.ca_file.expanduser())
        return conf

    @property
    def host_port(self) -> tuple[str, int]:
        first = self.bootstrap_servers.split(",")[0].strip()
        host, _, port = first.rpartition(":")
        return host or "127.0.0.1", int(port)


class MongoSettings(BaseModel):
    """A MongoDB-wire server: FerretDB in the managed stack, real MongoDB elsewhere."""

    url: str = "mongodb://127.0.0.1:27017/"
    database: str = "polystream"
    server_selection_timeout_s: float = Field(5.0, gt=0)
    # The PostgreSQL database FerretDB keeps its data in (on the managed PostgreSQL).
    ferretdb_backend_database: str = "ferretdb"
    managed: bool = True

    @property
    def host_port(self) -> tuple[str, int]:
        rest = self.url.split("://", 1)[-1].split("/", 1)[0].split("@")[-1].split(",")[0]
        host, _, port = rest.rpartition(":")
        return (host or "127.0.0.1", int(port)) if port.isdigit() else (rest, 27017)


class OpenSearchSettings(BaseModel):
    enabled: bool = True
    url: str = "http://127.0.0.1:9200"
    transport_port: int = Field(9300, ge=1, le=65535)
    heap: str = "512m"
    index_prefix: str = "polystream-audit"
    timeout_s: float = Field(10.0, gt=0)
    # Of the audit indices the auditor creates (a cluster of N data nodes: replicas >= 1).
    shards: int = Field(1, ge=1, le=1024)
    replicas: int = Field(0, ge=0, le=16)
    # Months of audit documents (OpenSearch indices or JSONL files) entirely older than this
    # are deleted by the auditor (at start and hourly) and skipped by `verify`. Events carry
    # the month of their UUIDv7 id, so a replay of old events lands in expired months.
    retention_days: int = Field(90, ge=1)
    # Basic authentication and the CA of an https:// cluster (system CAs when unset).
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    managed: bool = True

    @property
    def http_port(self) -> int:
        tail = self.url.rstrip("/").rsplit(":", 1)[-1]
        return int(tail) if tail.isdigit() else 9200

    @property
    def host_port(self) -> tuple[str, int]:
        return urlsplit(self.url).hostname or "127.0.0.1", self.http_port


class PrivacySettings(BaseModel):
    # Crypto-shredding of the data topics (docs/operations.md, "Erasure"): producers seal
    # personal fields with a per-user key kept in PostgreSQL, destroyed on erasure, so that
    # erasure holds in Kafka too. Off, producers publish them in clear (erasure then reaches
    # the topics only through retention); consumers open sealed fields either way.
    encrypt_personal: bool = True
    # The PostgreSQL database holding the data keys; None = the accounts database. Set it
    # when several deployments (their own accounts databases) read the same topics, as the
    # chaos drills do: the keys belong to the topics, not to one deployment's stores.
    keys_database: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,63}$")
    key_cache_size: int = Field(100_000, ge=1)
    key_cache_ttl_s: float = Field(300.0, gt=0)


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Operators (catalog, flags, audit, dashboard) send it as `Authorization: Bearer <token>`.
    # Empty = operator endpoints refuse everyone; set it from a secret store, never in code.
    operator_token: SecretStr = SecretStr("")
    # Upper bound of `?wait=` / `Prefer: wait=`: how long a command may wait for the stores.
    wait_max_s: float = Field(10.0, gt=0, le=60)
    publish_timeout_s: float = Field(10.0, gt=0)
    # Login sessions: idle time after which a token stops working (each use extends it).
    session_ttl_s: int = Field(3600, gt=0)
    # Login attempts allowed per window, per account (email) and per client address; the
    # window is fixed and starts at the first attempt. A successful login clears the
    # account's count, not the address's.
    login_attempts_per_account: int = Field(10, ge=1)
    login_attempts_per_address: int = Field(100, ge=1)
    login_window_s: int = Field(300, ge=1)
    # Hostile clients (issue 12): a body must arrive within body_timeout_s (408); a request
    # holds the server at most request_timeout_s (504; above wait_max_s + publish_timeout_s);
    # an idle keep-alive connection is closed after keep_alive_timeout_s; at most
    # hash_queue_max sign-ups wait for the argon2 pool, the next ones get 503 + Retry-After.
    body_timeout_s: float = Field(10.0, gt=0, le=300)
    request_timeout_s: float = Field(30.0, gt=0, le=600)
    keep_alive_timeout_s: float = Field(5.0, gt=0, le=300)
    hash_queue_max: int = Field(4, ge=0, le=10_000)
    # Key used to pseudonymise personal fields in the audit trail.
    audit_secret: SecretStr = SecretStr("")


class ReadSettings(BaseModel):
    """The public read endpoints (``/titles``, ``/rankings``, ``/flags``)."""

    # Budget of one store call of a read: past it the endpoint answers 503 (the API promises
    # an answer within 2 s when a store is down; this leaves room for the rest of the request).
    store_timeout_s: float = Field(1.5, gt=0, le=10)
    # Cache-aside lifetimes. Invalidation by the Redis sink is what keeps entries fresh; the
    # TTL only bounds what a missed invalidation can cost.
    title_cache_ttl_s: int = Field(300, ge=1)
    browse_cache_ttl_s: int = Field(30, ge=1)
    # Budget of one cache operation: a cache slower than this is worse than none.
    cache_timeout_s: float = Field(0.5, gt=0, le=10)
    # After a cache failure, reads skip the cache for this long instead of paying the
    # timeout on every request (they still answer, from the store of record).
    cache_retry_s: float = Field(5.0, ge=0)
    # A flag is public (served by `GET /flags` to anyone) when its name starts with one of
    # these; every other flag stays private to the services.
    public_flag_prefixes: tuple[str, ...] = ("public.",)


class ObservabilitySettings(BaseModel):
    """Metrics, logs and trace context of every process (docs/operations.md, Observability)."""

    # Each worker process serves Prometheus /metrics here; port 0 = off. A port already taken
    # (several workers on one host) logs a warning and the worker runs without metrics.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9464, ge=0, le=65535)
    # The API's /metrics (same app, same port as the API). Operators only by default (usage
    # counters are not for the public); false for a scraper on a private network that cannot
    # send the operator token.
    api_metrics: bool = True
    metrics_require_token: bool = True
    # Seconds between two refreshes of the consumer-lag gauges by a worker (0 = never).
    lag_refresh_s: float = Field(5.0, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # JSON lines for log shippers; "console" for humans. Unset = console in dev, else json.
    log_format: Literal["json", "console"] | None = None
    # OTLP/HTTP (protobuf) collector that receives the spans, e.g. http://127.0.0.1:4318
    # (``/v1/traces`` is added unless the path already ends with it). Unset = no spans: no
    # tracer provider, no exporter thread; the trace id still travels in headers and logs.
    otlp_endpoint: str | None = Field(None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    # ``key=value`` pairs, comma-separated (the OTEL_EXPORTER_OTLP_HEADERS format): an API key
    # of a hosted collector, so a secret.
    otlp_headers: SecretStr | None = None
    # The processes are named <service name>-api, -sink-postgres, -auditor, ... in the traces.
    otlp_service_name: str = Field("polystream", min_length=1, max_length=64)
    otlp_timeout_s: float = Field(10.0, gt=0, le=60)

    @field_validator("otlp_endpoint", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `POLYSTREAM_OBSERVABILITY__OTLP_ENDPOINT=` (an emptied line of .env) means off.
        return None if isinstance(value, str) and not value.strip() else value


class StackSettings(BaseModel):
    # All state, logs and pid files of the managed servers; relative paths are taken from the
    # current directory (the checkout, for `make`).
    home: Path = Path(".stack")
    # Downloads kept across stack folders and CI runs (the pinned Go toolchain's zip);
    # unset = $XDG_CACHE_HOME/polystream or ~/.cache/polystream.
    cache_dir: Path | None = None
    start_timeout_s: float = Field(180.0, gt=0)
    stop_timeout_s: float = Field(30.0, gt=0)

    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    def resolved_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir.expanduser().resolve()
        xdg = os.environ.get("XDG_CACHE_HOME")
        return (Path(xdg) if xdg else Path.home() / ".cache") / "polystream"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="POLYSTREAM_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    environment: Literal["dev", "test", "prod"] = "dev"
    postgres: PostgresSettings = PostgresSettings()
    redis: RedisSettings = RedisSettings()
    kafka: KafkaSettings = KafkaSettings()
    mongo: MongoSettings = MongoSettings()
    opensearch: OpenSearchSettings = OpenSearchSettings()
    api: ApiSettings = ApiSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    stack: StackSettings = StackSettings()
    reads: ReadSettings = ReadSettings()
    privacy: PrivacySettings = PrivacySettings()

    def log_format(self) -> Literal["json", "console"]:
        if self.observability.log_format is not None:
            return self.observability.log_format
        return "console" if self.environment == "dev" else "json"


def load_settings() -> Settings:
    return Settings()
