"""All configuration of polystream, read once in an entry point and passed down.

Every variable is ``POLYSTREAM_<SECTION>__<FIELD>`` (see ``.env.example``). A ``.env`` file in the
working directory is read too. Nothing here connects to anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class PostgresSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(5432, ge=1, le=65535)
    user: str = "polystream"
    password: SecretStr = SecretStr("polystream")
    database: str = "polystream"
    connect_timeout_s: float = Field(5.0, gt=0)
    # False: the server is the user's own; `stack up` only checks that it answers.
    managed: bool = True

    def dsn(self, database: str | None = None) -> str:
        """A libpq URL (psycopg 3) for this server, optionally for another database on it."""
        pw = self.password.get_secret_value()
        return (
            f"postgresql://{self.user}:{pw}@{self.host}:{self.port}/{database or self.database}"
            f"?connect_timeout={max(1, int(self.connect_timeout_s))}"
        )

    def sqlalchemy_url(self) -> str:
        return self.dsn().replace("postgresql://", "postgresql+psycopg://", 1)


class RedisSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(6379, ge=1, le=65535)
    db: int = Field(0, ge=0)
    password: SecretStr | None = None
    socket_timeout_s: float = Field(5.0, gt=0)
    managed: bool = True

    @property
    def url(self) -> str:
        auth = f":{self.password.get_secret_value()}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/{self.db}"


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    # Port of the KRaft controller listener of the managed single node.
    controller_port: int = Field(9093, ge=1, le=65535)
    # Partitions of every topic when set; otherwise each topic's own default (TOPIC_PARTITIONS).
    partitions: int = Field(6, ge=1, le=1000)
    replication_factor: int = Field(1, ge=1)
    heap: str = "512m"
    request_timeout_s: float = Field(10.0, gt=0)
    # Consumer groups of the sinks are `<group_prefix>-<sink>`: another prefix gives a second
    # set of groups with their own offsets over the same topics (a benchmark, a rebuild).
    group_prefix: str = Field("polystream", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
    managed: bool = True

    def consumer_group(self, sink: str) -> str:
        return f"{self.group_prefix}-{sink}"

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
    managed: bool = True

    @property
    def http_port(self) -> int:
        tail = self.url.rstrip("/").rsplit(":", 1)[-1]
        return int(tail) if tail.isdigit() else 9200


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Operators (catalog, flags, audit, dashboard) send it as `Authorization: Bearer <token>`.
    # Empty = operator endpoints refuse everyone; set it from a secret store, never in code.
    operator_token: SecretStr = SecretStr("")
    # Upper bound of `?wait=` / `Prefer: wait=`: how long a command may wait for the stores.
    wait_max_s: float = Field(10.0, gt=0, le=60)
    publish_timeout_s: float = Field(10.0, gt=0)
    session_ttl_s: int = Field(3600, gt=0)
    # Key used to pseudonymise personal fields in the audit trail.
    audit_secret: SecretStr = SecretStr("")


class StackSettings(BaseModel):
    # All state, logs and pid files of the managed servers; relative paths are taken from the
    # current directory (the checkout, for `make`).
    home: Path = Path(".stack")
    start_timeout_s: float = Field(180.0, gt=0)
    stop_timeout_s: float = Field(30.0, gt=0)

    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()


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
    stack: StackSettings = StackSettings()


def load_settings() -> Settings:
    return Settings()
