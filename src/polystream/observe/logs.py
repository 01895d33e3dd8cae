"""Structured logs: every stdlib logger of the process goes through structlog's formatter.

The modules keep ``logging.getLogger(__name__)``; only the entry points call `configure`, so
libraries and our code end up in one stream of JSON lines (or coloured console lines in dev).
Values bound with `bind` (trace id, event id) are added to every line of the current context
(an asyncio task or a thread).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal

import structlog

#: Chatty at INFO (one line per HTTP request to the cluster, one per migration step).
QUIET_LOGGERS = ("opensearch", "opensearchpy", "urllib3", "alembic", "kafka", "httpx", "pymongo")

#: Fields a stdlib logger may add with ``extra=``.
LOG_FIELDS = ("trace_id", "event_id", "event_type", "consumer", "route", "status",
              "duration_ms")

# Keys whose values must never reach a log line, whoever binds them.
_SECRET_KEY = re.compile(r"pass|secret|token|card|cvv|pan$|authorization|cookie|email",
                         re.IGNORECASE)


def _drop_secrets(_logger: Any, _name: str,
                  event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key != "event" and _SECRET_KEY.search(key):
            event_dict[key] = "[redacted]"
    return event_dict


def _processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        # `log.info(..., extra={"trace_id": ...})` from stdlib loggers becomes a field.
        structlog.stdlib.ExtraAdder(allow=LOG_FIELDS),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]


def formatter(fmt: Literal["json", "console"]) -> logging.Formatter:
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )


def configure(level: str = "INFO", fmt: Literal["json", "console"] = "json") -> None:
    """Route every logger of the process to stderr through structlog; idempotent."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    structlog.configure(
        processors=[*_processors(), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def uvicorn_config(level: str, fmt: Literal["json", "console"]) -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn: its loggers and ours, one formatter."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structlog": {"()": formatter, "fmt": fmt}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "structlog",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"level": level.upper()},
            "uvicorn.error": {"level": level.upper()},
            # Raw paths and query strings are client-controlled: the API logs route templates.
            "uvicorn.access": {"level": "WARNING"},
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
    }


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Add ``values`` to every log line inside the block (this task or thread only)."""
    tokens = structlog.contextvars.bind_contextvars(**values)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def bind(**values: Any) -> None:
    structlog.contextvars.bind_contextvars(**values)
