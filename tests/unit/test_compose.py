"""docker-compose.yml and the Dockerfile: what Compose itself checks where its client exists
(`docker compose config`), and the structure this project relies on, checked always."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"

SECRETS = {"POSTGRES_PASSWORD": "pg-test-secret", "MONGO_PASSWORD": "mongo-test-secret",
           "REDIS_PASSWORD": "redis-test-secret", "AUDIT_SECRET": "audit-test-secret"}
SERVERS = {"postgres", "mongo", "redis", "kafka", "opensearch"}
POLYSTREAM = {"api", "worker-postgres", "worker-mongo", "worker-redis", "auditor", "simulator",
              "topics"}
ONE_SHOT = {"topics", "simulator"}
STATE = {"postgres": "/var/lib/postgresql/data", "mongo": "/data/db", "redis": "/data",
         "kafka": "/var/lib/kafka/data", "opensearch": "/usr/share/opensearch/data"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _compose_cli() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True,
                           timeout=30, check=False)
    return docker if probe.returncode == 0 else None


def _image_version(image: str) -> tuple[int, ...]:
    tag = image.rsplit(":", 1)[1]
    return tuple(int(part) for part in tag.split("."))


def test_docker_compose_config_accepts_the_file() -> None:
    docker = _compose_cli()
    if docker is None:
        # No compose plugin here: check what `config` would refuse, ourselves. Every secret
        # is a required interpolation (${NAME:?...}), so the file cannot start without it.
        text = COMPOSE.read_text()
        for name in SECRETS:
            assert re.search(r"\$\{" + name + r":\?[^}]+\}", text), name
        assert not re.search(r"\$\{(?!(" + "|".join(SECRETS) + r"|[A-Z_]+:-))", text)
        return
    env = {**os.environ, **SECRETS}
    run = subprocess.run([docker, "compose", "-f", str(COMPOSE), "--profile", "dashboards",
                          "--profile", "simulate", "config", "--quiet"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    bare = {k: v for k, v in env.items() if k not in SECRETS}
    refused = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
                             env=bare, cwd=Path("/"), capture_output=True, text=True,
                             timeout=60, check=False)
    assert refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stderr


def test_every_part_of_the_platform_is_a_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert SERVERS | POLYSTREAM | {"dashboards"} <= set(services)
    assert services["dashboards"]["profiles"] == ["dashboards"]
    assert services["simulator"]["profiles"] == ["simulate"]
    for name in POLYSTREAM:
        assert services[name]["build"] == "."
    # One worker per sink, plus the auditor, each in its own container.
    commands = {name: services[name]["command"][:2] for name in services
                if name.startswith("worker-") or name == "auditor"}
    assert commands == {"worker-postgres": ["worker", "postgres"],
                        "worker-mongo": ["worker", "mongo"],
                        "worker-redis": ["worker", "redis"], "auditor": ["worker", "audit"]}


def test_image_versions(compose: dict[str, Any]) -> None:
    images = {name: svc["image"] for name, svc in compose["services"].items()
              if name in SERVERS or name == "dashboards"}
    assert _image_version(images["postgres"])[0] == 16
    assert images["mongo"].startswith("mongo:") and _image_version(images["mongo"])[0] >= 7
    assert images["kafka"].startswith("apache/kafka:")
    assert _image_version(images["kafka"])[0] == 4
    assert _image_version(images["redis"])[0] == 7
    assert images["opensearch"].startswith("opensearchproject/opensearch:")
    assert _image_version(images["opensearch"])[0] == 2
    assert images["dashboards"] == images["opensearch"].replace("opensearch:",
                                                                "opensearch-dashboards:")
    # Every image is pinned, and the documented versions are the ones in the file.
    operations = (ROOT / "docs" / "operations.md").read_text()
    for image in images.values():
        assert f"`{image}`" in operations, image


def test_healthchecks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        if name not in ONE_SHOT and name != "dashboards":
            test = svc.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), name
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            condition = spec["condition"]
            assert condition in ("service_healthy", "service_completed_successfully"), name
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], (name, dep)
            else:
                assert dep in ONE_SHOT and services[dep]["restart"] == "no"
    # Nothing of polystream starts before its topics exist and its stores answer.
    needs = {"api": {"redis", "opensearch"}, "worker-postgres": {"postgres", "redis"},
             "worker-mongo": {"mongo", "redis"}, "worker-redis": {"redis"},
             "auditor": {"opensearch"}}
    for name, stores in needs.items():
        deps = services[name]["depends_on"]
        assert deps["topics"]["condition"] == "service_completed_successfully"
        assert stores <= set(deps), name
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_state_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    for name, path in STATE.items():
        mounts = [m.split(":") for m in compose["services"][name]["volumes"]]
        assert any(target == path and source in compose["volumes"] for source, target in mounts)


def _environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    for name, svc in compose["services"].items():
        for key, value in _environment(svc).items():
            if SECRET_NAME.search(key):
                # Only interpolations, and none with a built-in default but the optional
                # operator token (empty = nobody is operator).
                assert re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*|:-)?\}", value), (name, key, value)
    for secret in ("POSTGRES_PASSWORD", "MONGO_PASSWORD", "REDIS_PASSWORD", "AUDIT_SECRET"):
        assert f"${{{secret}:?" in text, secret
    mongo_url = _environment(compose["services"]["api"])["POLYSTREAM_MONGO__URL"]
    assert "${MONGO_PASSWORD:?" in mongo_url
    # Only the API and the dashboards publish a port, and only on loopback.
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert name in ("api", "dashboards") and str(port).startswith("127.0.0.1:"), name


def test_env_example_documents_every_compose_variable() -> None:
    used = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE.read_text()))
    documented = {line.lstrip("# ").split("=", 1)[0]
                  for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line}
    assert used - documented == set()


def test_the_image_installs_the_locked_dependencies_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes -r /tmp/requirements.lock" in dockerfile
    assert "pip install --no-deps" in dockerfile
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.MULTILINE)
    assert 'ENTRYPOINT ["polystream"]' in dockerfile
