"""What the public read routers share: the read service of the app, the refusal of unknown
query parameters, and the answers every read can give."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Annotated, Any, cast

from fastapi import Depends, Request

from polystream.api.errors import ErrorBody, FieldProblem
from polystream.api.refusals import Busy, Invalid, Missing
from polystream.reads.catalog import StoreUnavailable
from polystream.reads.service import NotFound, ReadService

STORE_DOWN_RETRY_S = 2


def get_reads(request: Request) -> ReadService:
    return cast(ReadService, request.app.state.reads)


Reads = Annotated[ReadService, Depends(get_reads)]


def only_params(*names: str) -> Callable[[Request], None]:
    """A dependency refusing query parameters the endpoint does not know.

    ``?genre[$ne]=x`` or ``?filter={"$where": ...}`` would otherwise be silently dropped;
    refusing them tells the caller the filter did not apply (and nothing reaches a store).
    """
    allowed = frozenset(names)

    def check(request: Request) -> None:
        unknown = sorted({key for key in request.query_params if key not in allowed})
        if unknown:
            raise Invalid("the request is invalid", [
                FieldProblem(field=f"query.{key[:64]}", message="unknown query parameter; "
                             f"allowed: {', '.join(sorted(allowed)) or 'none'}",
                             type="extra_forbidden")
                for key in unknown
            ])

    return check


def unavailable(exc: StoreUnavailable) -> Busy:
    return Busy(f"{exc}; retry later", retry_after_s=STORE_DOWN_RETRY_S)


def not_found(what: str) -> Missing:
    return Missing(f"{what} not found")


class read_errors:
    """`with read_errors("title"):` answers a read's store errors: `NotFound` is 404
    "<what> not found" (when a `what` is given), `StoreUnavailable` is 503 with Retry-After.

    A class rather than `contextlib.contextmanager`, whose `__exit__` may swallow the error
    as far as mypy knows (a `return` inside the `with` would then need another after it).
    """

    def __init__(self, what: str | None = None) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(exc, NotFound) and self.what is not None:
            raise not_found(self.what) from None
        if isinstance(exc, StoreUnavailable):
            raise unavailable(exc) from None


def read_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of the refusals of a read."""
    text = {
        304: "Not modified: the `If-None-Match` ETag is current.",
        400: "The cursor was not issued for this query.",
        404: "No such title (or it was removed).",
        422: "Invalid input: a path or query value outside its type or pattern, or an "
             "unknown query parameter. Nothing was read.",
        503: "The store this endpoint needs is unavailable (answered within 2 s); "
             "`Retry-After` says when to retry.",
    }
    return {code: ({"description": text[code]} if code == 304 else
                   {"model": ErrorBody, "description": text[code]}) for code in codes}
