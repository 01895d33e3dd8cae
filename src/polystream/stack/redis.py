"""Redis 7 from Debian's package (`redis-server`), one instance on loopback."""

from __future__ import annotations

import shutil

import redis

from polystream.settings import RedisSettings
from polystream.stack.base import Server
from polystream.stack.process import StackError
from polystream.stack.provision import apt_install


class RedisServer(Server):
    name = "redis"

    @property
    def cfg(self) -> RedisSettings:
        return self.settings.redis

    def provision(self) -> None:
        if self.cfg.tls:
            raise StackError("redis: the managed server listens without TLS; set "
                             "POLYSTREAM_REDIS__MANAGED=false for a rediss:// server")
        if shutil.which("redis-server") is None:
            apt_install(["redis-server"], log=self.provision_log, progress=self.progress)
        if shutil.which("redis-server") is None:
            raise StackError("redis: redis-server missing after installing the package")

    def command(self) -> list[str]:
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--bind", self.cfg.host,
            "--port", str(self.cfg.port),
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--logfile", "",
            # Sessions and counters survive a restart: append-only file, fsync every second.
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
        ]
        if self.cfg.username is not None:
            # An ACL user with every right, as a managed service's application user would be.
            pw = self.cfg.password.get_secret_value() if self.cfg.password else ""
            argv += ["--user", self.cfg.username, "on", f">{pw}" if pw else "nopass", "~*",
                     "&*", "+@all"]
        elif self.cfg.password is not None:
            argv += ["--requirepass", self.cfg.password.get_secret_value()]
        return argv

    def probe(self) -> str:
        client = redis.Redis.from_url(self.cfg.url, socket_timeout=3, socket_connect_timeout=3)
        try:
            client.ping()
            info = client.info("server")
        finally:
            client.close()
        return f"Redis {info.get('redis_version', '?')}"
