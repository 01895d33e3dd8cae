"""`polystream stack …`: bring the real servers up and down on this machine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from polystream.settings import load_settings
from polystream.stack.manager import Stack
from polystream.stack.process import StackError, rss_kib

app = typer.Typer(no_args_is_help=True, help="The real stack: PostgreSQL, Redis, Kafka, "
                  "FerretDB (MongoDB wire) and OpenSearch on loopback.")
console = Console(stderr=True)
out = Console()

Names = Annotated[list[str] | None, typer.Argument(
    help="servers (postgres redis kafka ferretdb opensearch); all when omitted")]


def _stack() -> Stack:
    t0 = time.monotonic()

    def report(name: str, message: str) -> None:
        # Elapsed time on every line: a long first provisioning shows it is moving.
        console.print(f"[dim]{time.monotonic() - t0:6.1f}s[/] [bold cyan]{name:>10}[/] {message}",
                      highlight=False, soft_wrap=True)

    return Stack(load_settings(), report=report)


@contextmanager
def _failing_as(command: str) -> Iterator[None]:
    """A `StackError` ends the command with ``<command> failed: reason`` and exit code 1."""
    try:
        yield
    except StackError as exc:
        console.print(f"[bold red]{command} failed:[/] {exc}")
        raise typer.Exit(1) from None


@app.command()
def up(names: Names = None) -> None:
    """Provision what is missing, start what is not running, wait until all answer."""
    t0 = time.monotonic()
    with _failing_as("stack up"):
        results = _stack().up(names)
    took = time.monotonic() - t0
    console.print(f"[bold green]stack up[/]: {len(results)} servers healthy in {took:.1f}s")


@app.command()
def down(names: Names = None) -> None:
    """Stop exactly the processes that `up` started (their process groups)."""
    with _failing_as("stack down"):
        stopped = _stack().down(names)
    console.print(f"[bold]stack down[/]: stopped {', '.join(stopped) or 'nothing'}")


@app.command()
def status() -> None:
    """Each server: address, version, healthy or not, pid and memory. Exit 1 if any is down."""
    healths = _stack().status()
    table = Table("server", "address", "version", "health", "pid", "RSS MiB")
    for h in healths:
        rss = rss_kib(h.pid) if h.pid else None
        table.add_row(
            h.name, h.address, h.version or "-",
            "[green]healthy[/]" if h.healthy else f"[red]down[/] {h.detail}",
            str(h.pid) if h.pid else ("external" if not h.managed else "-"),
            f"{rss / 1024:.0f}" if rss else "-",
        )
    out.print(table)
    if not all(h.healthy for h in healths):
        raise typer.Exit(1)


@app.command()
def logs(name: Annotated[str, typer.Argument(help="server name")],
         lines: Annotated[int, typer.Option("--lines", "-n", min=1)] = 50) -> None:
    """Print the end of a server's log file (and where it is)."""
    try:
        path = _stack().log_file(name)
    except StackError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    console.print(f"[dim]{path}[/]")
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        console.print("(no log yet)")
        return
    out.print("\n".join(text[-lines:]), markup=False, highlight=False)
