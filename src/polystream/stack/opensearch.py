"""OpenSearch 2.19 from Maven Central jars, started by the one-file launcher in
`infra/opensearch/` of this package (a `Node` subclass with the transport, analysis, painless,
reindex and mapper-extras modules; no security plugin, loopback only)."""

from __future__ import annotations

import os
import shutil
import ssl
from pathlib import Path

import httpx

from polystream.settings import OpenSearchSettings
from polystream.stack.base import Server, infra_dir, java_bin
from polystream.stack.process import StackError
from polystream.stack.provision import require_tool, run
from polystream.stack.toolchains import require_jdk


class OpenSearchServer(Server):
    name = "opensearch"

    @property
    def cfg(self) -> OpenSearchSettings:
        return self.settings.opensearch

    def ports(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.cfg.http_port), ("127.0.0.1", self.cfg.transport_port)]

    @property
    def build_dir(self) -> Path:
        return self.home / "build" / "opensearch"

    def provision(self) -> None:
        src = infra_dir() / "opensearch"
        self.build_once(
            [src / "pom.xml", src / "OpenSearchLauncher.java", src / "log4j2.properties"],
            lambda: self._build(src),
            built=any((self.build_dir / "lib").glob("opensearch-2*.jar")))

    def _build(self, src: Path) -> None:
        # The launcher is compiled: a JRE's `java` is not enough, Maven needs a JDK's javac.
        jdk = require_jdk(log=self.provision_log, progress=self.progress)
        mvn = require_tool("mvn", apt_package="maven", log=self.provision_log,
                           progress=self.progress)
        if self.build_dir.exists():
            shutil.rmtree(self.build_dir)
        self.progress(f"building the launcher with Maven (JDK {jdk}; OpenSearch jars from "
                      "Maven Central, cached in ~/.m2)")
        run([mvn, "-B", "-q", "-f", str(src / "pom.xml"), "package",
             f"-Dps.build={self.build_dir}"],
            env={**os.environ, "JAVA_HOME": str(jdk)}, progress=self.progress,
            what="opensearch: Maven build", log=self.provision_log)

    def command(self) -> list[str]:
        heap = self.cfg.heap
        return [
            java_bin(), f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError", "-Dfile.encoding=UTF-8",
            "-Djava.locale.providers=SPI,COMPAT",
            "-cp", f"{self.build_dir}/lib/*:{self.build_dir}/classes", "OpenSearchLauncher",
            "--http-port", str(self.cfg.http_port),
            "--transport-port", str(self.cfg.transport_port),
            "--home", str(self.dir / "home"),
            "--data", str(self.dir / "data"),
            "--logs", str(self.home / "logs" / "opensearch"),
        ]

    def probe(self) -> str:
        base = self.cfg.url.rstrip("/")
        auth = None
        if self.cfg.username is not None:
            pw = self.cfg.password.get_secret_value() if self.cfg.password else ""
            auth = httpx.BasicAuth(self.cfg.username, pw)
        verify: ssl.SSLContext | bool = True
        if self.cfg.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.cfg.ca_file.expanduser()))
        with httpx.Client(auth=auth, verify=verify, timeout=3) as http:
            return self._probe(http, base)

    def _probe(self, http: httpx.Client, base: str) -> str:
        health = http.get(f"{base}/_cluster/health",
                          params={"wait_for_status": "yellow", "timeout": "1s"})
        if health.status_code != 200:
            raise StackError(f"opensearch: cluster health answered {health.status_code}")
        if health.json().get("status") not in ("green", "yellow"):
            raise StackError(f"opensearch: cluster is {health.json().get('status')}")
        info = http.get(base).json()
        dist = info.get("version", {}).get("distribution", "elasticsearch")
        name = "OpenSearch" if dist == "opensearch" else "Elasticsearch"
        return f"{name} {info.get('version', {}).get('number', '?')}"
