from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from polystream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _env_names(model: type[BaseModel], prefix: str) -> list[str]:
    names: list[str] = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            names += _env_names(ann, f"{prefix}{name.upper()}__")
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = {line.lstrip("# ").split("=", 1)[0] for line in text.splitlines() if "=" in line}
    missing = [n for n in _env_names(Settings, "POLYSTREAM_") if n not in documented]
    assert missing == []


def test_nested_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("POLYSTREAM_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("POLYSTREAM_KAFKA__PARTITIONS", "12")
    monkeypatch.setenv("POLYSTREAM_POSTGRES__PORT", "6543")
    monkeypatch.setenv("POLYSTREAM_MONGO__MANAGED", "false")
    s = Settings(_env_file=None)
    assert s.kafka.partitions == 12
    assert s.postgres.port == 6543
    assert "@127.0.0.1:6543/polystream" in s.postgres.dsn()
    assert s.mongo.managed is False
    assert s.mongo.host_port == ("127.0.0.1", 27017)


def test_invalid_values_are_refused_with_the_field_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYSTREAM_KAFKA__PARTITIONS", "0")
    with pytest.raises(ValueError, match="partitions"):
        Settings(_env_file=None)


def test_sink_consumer_groups_follow_the_group_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from polystream.bus.topology import CONSUMER_GROUPS
    from polystream.domain.events import Sink

    for name in [n for n in os.environ if n.startswith("POLYSTREAM_")]:
        monkeypatch.delenv(name)
    default = Settings(_env_file=None)
    assert {s: default.kafka.consumer_group(s.value) for s in Sink} == dict(CONSUMER_GROUPS)
    monkeypatch.setenv("POLYSTREAM_KAFKA__GROUP_PREFIX", "bench-42")
    prefixed = Settings(_env_file=None)
    assert prefixed.kafka.consumer_group("redis") == "bench-42-redis"
    monkeypatch.setenv("POLYSTREAM_KAFKA__GROUP_PREFIX", "no spaces")
    with pytest.raises(ValueError, match="group_prefix"):
        Settings(_env_file=None)
