"""Apache Kafka as one KRaft node (broker and controller), jars from Maven Central.

`infra/kafka/pom.xml` (shipped in this package) pins the version; `mvn
dependency:copy-dependencies` puts the jars in the stack folder (the download itself is cached
in ~/.m2).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from confluent_kafka.admin import AdminClient

from polystream.settings import KafkaSettings
from polystream.stack.base import Server, infra_dir, java_bin, port_open
from polystream.stack.process import StackError
from polystream.stack.provision import (
    require_tool,
    run,
)

# Topics of the broker's own state; a single node cannot replicate them.
_SINGLE_NODE = {
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
}


class KafkaServer(Server):
    name = "kafka"

    @property
    def cfg(self) -> KafkaSettings:
        return self.settings.kafka

    def ports(self) -> list[tuple[str, int]]:
        host, port = self.cfg.host_port
        return [(host, port), (host, self.cfg.controller_port)]

    @property
    def lib_dir(self) -> Path:
        return self.home / "build" / "kafka-lib"

    def provision(self) -> None:
        if self.cfg.security_protocol != "PLAINTEXT":
            # The managed node is a loopback development broker; a secured cluster is the
            # user's own (MANAGED=false), which `stack up` only checks.
            raise StackError("kafka: the managed broker speaks PLAINTEXT only; set "
                             "POLYSTREAM_KAFKA__MANAGED=false to use a secured cluster")
        pom = infra_dir() / "kafka" / "pom.xml"
        self.build_once([pom], lambda: self._fetch_jars(pom),
                        built=any(self.lib_dir.glob("kafka_2.13-*.jar")))

    def _fetch_jars(self, pom: Path) -> None:
        # Kafka only runs on the JVM: a JRE is enough here.
        require_tool("java", apt_package="openjdk-17-jre-headless", log=self.provision_log,
                     progress=self.progress)
        mvn = require_tool("mvn", apt_package="maven", log=self.provision_log,
                           progress=self.progress)
        if self.lib_dir.exists():
            shutil.rmtree(self.lib_dir)
        self.progress("resolving the Kafka jars from Maven Central (cached in ~/.m2)")
        run([mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
             f"-DoutputDirectory={self.lib_dir}", "-DincludeScope=runtime"],
            progress=self.progress, what="kafka: Maven dependency copy", log=self.provision_log)

    def version(self) -> str:
        for jar in self.lib_dir.glob("kafka_2.13-*.jar"):
            m = re.match(r"kafka_2\.13-(.+)\.jar$", jar.name)
            if m:
                return m.group(1)
        return "?"

    @property
    def properties_file(self) -> Path:
        return self.dir / "server.properties"

    def prepare(self) -> None:
        super().prepare()
        host, port = self.cfg.host_port
        ctl = self.cfg.controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{host}:{ctl}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctl}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctl}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": str(self.cfg.partitions),
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
            **_SINGLE_NODE,
        }
        self.properties_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        if (self.dir / "data" / "meta.properties").is_file():
            return
        cp = f"{self.lib_dir}/*"
        cluster_id = subprocess.run(
            [java_bin(), "-cp", cp, "kafka.tools.StorageTool", "random-uuid"],
            check=True, capture_output=True, text=True).stdout.strip()
        if not cluster_id:
            raise StackError("kafka: StorageTool random-uuid printed nothing")
        run([java_bin(), "-cp", cp, "kafka.tools.StorageTool", "format", "--standalone", "-t",
             cluster_id, "-c", str(self.properties_file)],
            what="kafka: formatting the KRaft storage", log=self.provision_log)

    def command(self) -> list[str]:
        logs = self.home / "logs" / "kafka"
        logs.mkdir(parents=True, exist_ok=True)
        return [
            java_bin(), f"-Xms{self.cfg.heap}", f"-Xmx{self.cfg.heap}",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={infra_dir() / 'kafka' / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={logs}",
            "-cp", f"{self.lib_dir}/*", "kafka.Kafka", str(self.properties_file),
        ]

    def probe(self) -> str:
        host, port = self.cfg.host_port
        if not port_open(host, port):
            # Spares librdkafka's connection-refused log lines while the broker boots.
            raise StackError(f"kafka: nothing listens on {host}:{port}")
        admin = AdminClient({**self.cfg.client_config(), "socket.timeout.ms": 3000,
                             "log_level": 0})
        meta = admin.list_topics(timeout=3)
        if not meta.brokers:
            raise StackError("kafka: metadata lists no broker")
        return f"Kafka {self.version()}" if self.managed else f"Kafka ({len(meta.brokers)} brokers)"
