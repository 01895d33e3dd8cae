"""`polystream api serve`: the write API under uvicorn."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
import uvicorn

from polystream.observe.logs import uvicorn_config
from polystream.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="The write API (S1 over HTTP).")

FACTORY = "polystream.bootstrap_api:app_factory"


@app.callback()
def _group() -> None:
    """The write API (S1 over HTTP)."""
    # A callback keeps `serve` a subcommand (`polystream api serve`) even while it is the only
    # one: Typer otherwise collapses a one-command app into the command itself.


def log_config(level: str, fmt: Literal["json", "console"] = "console") -> dict[str, Any]:
    """uvicorn's loggers and ours through structlog. uvicorn's own access log is left out: it
    prints raw paths and query strings, which are client-controlled (the API logs the route
    template instead)."""
    return uvicorn_config(level, fmt)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: POLYSTREAM_API__HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: POLYSTREAM_API__PORT.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    log_level: Annotated[str | None, typer.Option(
        help="debug, info, warning, error. Default: POLYSTREAM_OBSERVABILITY__LOG_LEVEL.")] = None,
) -> None:
    """Serve the write API (each worker builds its app from the settings: uvicorn factory
    mode)."""
    settings = load_settings()
    level = (log_level or settings.observability.log_level).lower()
    uvicorn.run(
        FACTORY,
        factory=True,
        host=host or settings.api.host,
        port=port or settings.api.port,
        workers=workers,
        access_log=False,
        log_config=log_config(level, settings.log_format()),
        log_level=level,
        server_header=False,
        # Idle keep-alive connections are closed, so slow or idle clients cannot pile up.
        timeout_keep_alive=max(1, round(settings.api.keep_alive_timeout_s)),
        # Give in-flight commands (up to the publish timeout plus a wait) time to finish.
        timeout_graceful_shutdown=int(settings.api.publish_timeout_s + settings.api.wait_max_s),
    )
