"""FerretDB 1.24 (MongoDB wire protocol over PostgreSQL), built from the Go module proxy.

`infra/ferretdb/` (shipped in this package) holds a tiny Go program that embeds FerretDB as a
library: the upstream `cmd/ferretdb` binary panics at start when built with `go install` (it
expects a generated version file). Its data lives in a database of the stack's PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

from pymongo import MongoClient

from polystream.settings import MongoSettings
from polystream.stack.base import Server, infra_dir
from polystream.stack.provision import run
from polystream.stack.toolchains import find_go, go_version, required_go


class FerretDBServer(Server):
    name = "ferretdb"
    depends_on = ("postgres",)

    @property
    def cfg(self) -> MongoSettings:
        return self.settings.mongo

    @property
    def binary(self) -> Path:
        return self.home / "build" / "ferretdb"

    def provision(self) -> None:
        src = infra_dir() / "ferretdb"
        self.build_once([src / "go.mod", src / "go.sum", src / "main.go"], lambda: self._build(src),
                        built=self.binary.is_file(), salt="no_sqlite")

    def _build(self, src: Path) -> None:
        # The system Go when it is new enough for go.mod, else the pinned toolchain.
        go = find_go(required_go(src / "go.mod"), into=self.home / "build" / "toolchains",
                     downloads=self.settings.stack.resolved_cache_dir() / "downloads",
                     progress=self.progress)
        env = {**os.environ, "GOTOOLCHAIN": "local"}
        version = go_version(go)
        label = "go" + ".".join(map(str, version)) if version else go
        self.progress(f"building FerretDB with {label} (modules from the Go module proxy; "
                      "about a minute when its caches are cold)")
        # The SQLite backend is not used; leaving it out saves half a minute of cold build.
        run([go, "build", "-v", "-trimpath", "-ldflags=-s -w", "-tags", "ferretdb_no_sqlite",
             "-o", str(self.binary), "."],
            cwd=src, env=env, progress=self.progress, unit="packages compiled",
            what="ferretdb: go build", log=self.provision_log)

    def command(self) -> list[str]:
        pg = self.settings.postgres
        # pgx understands libpq's sslmode/sslrootcert, not every libpq parameter.
        ssl = {k: v for k, v in pg.libpq_params().items() if k.startswith("ssl")}
        backend_url = (pg.dsn(self.cfg.ferretdb_backend_database).split("?", 1)[0] + "?"
                       + urlencode(ssl))
        # At info it logs every connection; warnings and errors are what an operator needs.
        return [str(self.binary), "-listen-addr", self.address, "-postgresql-url", backend_url,
                "-log-level", "warn"]

    def probe(self) -> str:
        client: MongoClient[dict[str, object]] = MongoClient(
            self.cfg.url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)
        try:
            client.admin.command("ping")
            info = client.admin.command("buildInfo")
        finally:
            client.close()
        flavour = "FerretDB" if "ferretdbVersion" in info else "MongoDB"
        version = info.get("ferretdbVersion") or info.get("version", "?")
        return f"{flavour} {version}"
