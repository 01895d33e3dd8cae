"""OpenSearch 2.19 from Maven Central jars (launcher under infra/opensearch/)."""

from __future__ import annotations

import httpx

from polystream.settings import OpenSearchSettings
from polystream.stack.base import Server
from polystream.stack.process import StackError


class OpenSearchServer(Server):
    name = "opensearch"

    @property
    def cfg(self) -> OpenSearchSettings:
        return self.settings.opensearch

    @property
    def managed(self) -> bool:
        return self.cfg.managed

    @property
    def address(self) -> str:
        return self.cfg.url.split("://", 1)[-1].rstrip("/")

    def provision(self) -> None:
        raise StackError("opensearch: launcher not wired yet")

    def command(self) -> list[str]:
        raise StackError("opensearch: launcher not wired yet")

    def probe(self) -> str:
        r = httpx.get(f"{self.cfg.url}/_cluster/health", timeout=3)
        r.raise_for_status()
        return "OpenSearch"
