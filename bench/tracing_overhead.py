"""``python -m bench.tracing_overhead``: what span export costs, printed as a table.

The consumer loop over the in-memory bus with a handler that does nothing, so the figure is
the loop's own cost per record with tracing off and with spans exported over OTLP/HTTP to a
collector stand-in in another process (it answers 200 and discards). Every record carries a
distinct ``traceparent`` (the worst case: one link per record), or none (the simulator's
records: no link). And the API's two spans per
command (request + publish) per call. One core, no store: compare the per-record figure with
a sink's real cost per event (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table

from polystream.bus.memory import InMemoryBroker, InMemoryEventConsumer, InMemoryEventPublisher
from polystream.bus.ports import Record
from polystream.domain.events import new_trace_id
from polystream.observe import otlp, tracing
from polystream.runtime.loop import TP, BatchContext, ConsumerLoop, LoopConfig
from polystream.settings import ObservabilitySettings

# A collector stand-in: reads each export and answers 200, in its own process.
_SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


class Nothing:
    def handle(self, records: Sequence[Record], ctx: BatchContext) -> None:
        tracing.note_batch({"events": len(records)})

    def settle(self) -> None:
        pass

    def held(self) -> Mapping[TP, int]:
        return {}

    def wants_idle_call(self) -> bool:
        return False

    def forget(self, owned: set[TP]) -> None:
        pass

    def reset(self, ctx: BatchContext) -> None:
        pass

    def close(self) -> None:
        pass


def loop_us_per_record(records: int, batch: int, traced: bool) -> float:
    broker = InMemoryBroker(partitions_default=1)
    publisher = InMemoryEventPublisher(broker)
    for i in range(records):
        publisher.publish("t", str(i), b"{}", tracing.event_headers(new_trace_id(), str(i))
                          if traced else None)
    publisher.flush()
    loop = ConsumerLoop(name="bench", consumer=InMemoryEventConsumer(broker, "g", ["t"]),
                        publisher=publisher, handler=Nothing(),
                        config=LoopConfig(batch_size=batch, linger_s=0.0))
    done, started = 0, time.perf_counter()
    while done < records:
        done += loop.step().records
    return (time.perf_counter() - started) / records * 1e6


def api_us_per_command(calls: int) -> float:
    header = tracing.traceparent(new_trace_id())
    started = time.perf_counter()
    for _ in range(calls):
        with tracing.request_span("POST", header), tracing.publish_span("t", "x"):
            tracing.current_trace_id()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    # The API row makes spans faster than one exporter drains them: the SDK's "queue full"
    # warnings would bury the table.
    logging.getLogger("opentelemetry").setLevel(logging.ERROR)
    sink = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        endpoint = f"http://127.0.0.1:{sink.stdout.readline().strip()}"
        rows: list[tuple[str, str, float, float]] = []
        for what, batch, traced in (
                ("loop, batch 500, no traceparent (simulator)", 500, False),
                ("loop, batch 500, each record its own trace (API)", 500, True),
                ("loop, batch 50, each record its own trace (API)", 50, True)):
            off = min(loop_us_per_record(args.records, batch, traced) for _ in range(args.reps))
            otlp.configure(ObservabilitySettings(otlp_endpoint=endpoint), "bench")
            on = min(loop_us_per_record(args.records, batch, traced) for _ in range(args.reps))
            tracing.shutdown()
            rows.append((what, "µs per record", off, on))
        off = min(api_us_per_command(20_000) for _ in range(args.reps))
        otlp.configure(ObservabilitySettings(otlp_endpoint=endpoint), "bench")
        on = min(api_us_per_command(20_000) for _ in range(args.reps))
        tracing.shutdown()
        rows.append(("API request + publish spans", "µs per command", off, on))
    finally:
        sink.terminate()
        sink.wait(10)
    load = os.getloadavg()[0]
    table = Table(title=f"Span export cost (best of {args.reps}, load average {load:.1f}, "
                        f"{os.cpu_count()} cores)")
    for col in ("path", "unit", "tracing off", "spans exported", "added"):
        table.add_column(col, justify="left" if col in ("path", "unit") else "right")
    for what, unit, off, on in rows:
        table.add_row(what, unit, f"{off:.2f}", f"{on:.2f}", f"{on - off:+.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
