"""FerretDB 1.24 (MongoDB wire protocol over PostgreSQL), built from the Go module proxy.

`infra/ferretdb/` (shipped in this package) holds a tiny Go program that embeds FerretDB as a
library: the upstream `cmd/ferretdb` binary panics at start when built with `go install` (it expects a generated
version file). Its data lives in a database of the stack's PostgreSQL.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from pymongo import MongoClient

from polystream.settings import MongoSettings
from polystream.stack.base import Server, infra_dir
from polystream.stack.process import StackError
from polystream.stack.provision import inputs_hash, require_tool, run, stamp_fresh, write_stamp

# infra/ferretdb/go.mod's `go` line: FerretDB 1.24 needs it (Debian 12's golang-go is 1.19).
MIN_GO = (1, 24)


def _require_go(go: str, minimum: tuple[int, int]) -> None:
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                         check=False).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)", out)
    if match is None or (int(match.group(1)), int(match.group(2))) < minimum:
        raise StackError(f"ferretdb: needs Go >= {minimum[0]}.{minimum[1]} to build, found "
                         f"{out or 'no version'} at {go}; install a current Go toolchain")


class FerretDBServer(Server):
    name = "ferretdb"
    depends_on = ("postgres",)

    @property
    def cfg(self) -> MongoSettings:
        return self.settings.mongo

    @property
    def managed(self) -> bool:
        return self.cfg.managed

    @property
    def address(self) -> str:
        host, port = self.cfg.host_port
        return f"{host}:{port}"

    @property
    def binary(self) -> Path:
        return self.home / "build" / "ferretdb"

    def provision(self) -> None:
        src = infra_dir() / "ferretdb"
        stamp = self.home / "build" / "ferretdb.stamp"
        digest = inputs_hash([src / "go.mod", src / "go.sum", src / "main.go"], "no_sqlite")
        if stamp_fresh(stamp, digest) and self.binary.is_file():
            return
        go = require_tool("go", apt_package="golang-go", log=self.provision_log)
        _require_go(go, MIN_GO)
        # The SQLite backend is not used; leaving it out saves half a minute of cold build.
        run([go, "build", "-trimpath", "-ldflags=-s -w", "-tags", "ferretdb_no_sqlite",
             "-o", str(self.binary), "."],
            cwd=src, what="ferretdb: building from the Go module proxy", log=self.provision_log)
        write_stamp(stamp, digest)

    def command(self) -> list[str]:
        pg = self.settings.postgres
        backend_url = pg.dsn(self.cfg.ferretdb_backend_database).split("?", 1)[0]
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
