"""One JSON shape for every refusal: ``{"detail": "...", "errors": [{"field", "message",
"type"}]}``.

Inputs are never echoed: FastAPI's default 422 body repeats each bad value (``input``), which
would send a mistyped password or a card number straight back and into any proxy's logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from polystream.api.refusals import (
    INVALID_REQUEST,
    Busy,
    Conflict,
    FieldProblem,
    Forbidden,
    Invalid,
    InvalidCursor,
    Missing,
    Refusal,
    TooLarge,
    TooMany,
    Unauthenticated,
    Unsupported,
    UpstreamRefused,
)
from polystream.domain.errors import FieldError

__all__ = [
    "INVALID_REQUEST", "ErrorBody", "FieldProblem", "Refusal", "error_response",
    "event_problems", "install_error_handlers", "refusal_response", "request_problems",
]


class ErrorBody(BaseModel):
    detail: str
    errors: list[FieldProblem] = Field(default_factory=list)


#: The one table from a kind of refusal to its status code (the most specific class wins).
_STATUS: dict[type[Refusal], int] = {
    Invalid: 422,
    Conflict: 409,
    InvalidCursor: 400,
    TooLarge: 413,
    Unsupported: 415,
    Missing: 404,
    Unauthenticated: 401,
    Forbidden: 403,
    TooMany: 429,
    Busy: 503,
    UpstreamRefused: 502,
}


def status_of(refusal: Refusal) -> int:
    for kind in type(refusal).__mro__:
        if kind in _STATUS:
            return _STATUS[kind]
    return 400


def refusal_response(refusal: Refusal) -> JSONResponse:
    """The HTTP answer to a refusal: its status, the documented body and its headers."""
    headers: dict[str, str] = {}
    if isinstance(refusal, Busy):
        headers["Retry-After"] = str(refusal.retry_after_s)
    if isinstance(refusal, Unauthenticated):
        challenge = f'Bearer realm="{refusal.realm}"'
        if refusal.error:
            challenge += f', error="{refusal.error}"'
        headers["WWW-Authenticate"] = challenge
    return error_response(status_of(refusal), refusal.detail, refusal.problems,
                          headers or None)


def error_response(
    status: int,
    detail: str,
    errors: Iterable[FieldProblem] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(detail=detail, errors=list(errors))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def join_loc(loc: Iterable[str | int]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f".{part}" if parts else str(part))
    return "".join(parts) or "body"


def _from_pydantic(error: Mapping[str, Any]) -> FieldProblem:
    kind = str(error.get("type", "value_error"))
    loc = tuple(error.get("loc", ()))
    if kind == "json_invalid":
        # loc is ("body", <character offset>): the offset is not a field.
        ctx = error.get("ctx") or {}
        return FieldProblem(
            field="body", message=f"invalid JSON: {ctx.get('error', 'cannot parse')}", type=kind
        )
    return FieldProblem(field=join_loc(loc), message=_plain(str(error.get("msg", "invalid"))),
                        type=kind)


def _plain(message: str) -> str:
    # pydantic prefixes the messages of custom validators; the type already says it.
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def request_problems(exc: RequestValidationError) -> list[FieldProblem]:
    return [_from_pydantic(error) for error in exc.errors()]


def event_problems(errors: Sequence[FieldError], where: Mapping[str, str]) -> list[FieldProblem]:
    """Field errors of the event contract, re-addressed to the request that carried them.

    ``payload.stars`` becomes ``body.stars``; a payload field that came from the URL becomes
    ``path.<name>`` / ``query.<name>`` through ``where`` (payload field -> request location).
    Errors of the payload as a whole (cross-field rules) point at ``body``.
    """
    problems = []
    for error in errors:
        path = error.path
        field = "body"
        if path.startswith("payload.") or path.startswith("payload["):
            rest = path[len("payload") :]
            name = rest.lstrip(".").split(".", 1)[0].split("[", 1)[0]
            tail = rest[1 + len(name) :] if rest.startswith(".") else rest[len(name) :]
            field = where.get(name, f"body.{name}") + tail
        problems.append(FieldProblem(field=field, message=_plain(error.message), type=error.kind))
    return problems


async def _refusal(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refusal)
    return refusal_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, INVALID_REQUEST, request_problems(exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Refusal, _refusal)
    app.add_exception_handler(RequestValidationError, _validation_error)
