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

from polystream.domain.errors import FieldError

INVALID_REQUEST = "the request is invalid; nothing was published"


class FieldProblem(BaseModel):
    """What is wrong with one input, and where."""

    field: str = Field(
        description="Where: body.<path>, path.<name>, query.<name>, header.<name> or "
        "body (the body as a whole).",
        examples=["body.stars"],
    )
    message: str = Field(examples=["Input should be less than or equal to 5"])
    type: str = Field(description="Machine-readable kind (pydantic's error type).")


class ErrorBody(BaseModel):
    detail: str
    errors: list[FieldProblem] = Field(default_factory=list)


class ApiError(Exception):
    """An HTTP refusal raised anywhere below a route; rendered by the handler below."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: Sequence[FieldProblem] = (),
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})


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


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.detail, exc.errors, exc.headers or None)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, INVALID_REQUEST, request_problems(exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
