"""Why the API refuses a request, said in the terms of the service, not of HTTP.

Services, guards and routers raise these; exactly one place, `errors.refusal_response`, turns
each kind into a status code and headers. So a service can be called (and tested) without a
web framework, and a status code cannot drift between two endpoints that refuse for the same
reason. The body shape is the documented one: ``{"detail", "errors": [FieldProblem...]}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

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


class Refusal(Exception):
    """Base of every refusal: a sentence for the caller and, when inputs are at fault, which."""

    def __init__(self, detail: str, problems: Sequence[FieldProblem] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = list(problems)


class Invalid(Refusal):
    """An input breaks its type, pattern or a rule of the event contract."""


class Conflict(Refusal):
    """Well-formed, but the caller's current state does not allow it (e.g. a plan's stream
    limit); the caller can change that state and retry."""


class InvalidCursor(Refusal):
    """A paging cursor that was not issued for this query."""


class TooLarge(Refusal):
    """The body, an upload or the event it would make is over its limit."""


class Unsupported(Refusal):
    """An upload of a media type the platform does not take."""


class Missing(Refusal):
    """Nothing by that id for this caller: unknown, removed, expired or someone else's (the
    same answer for all, so ids of other users cannot be probed)."""


class Unauthenticated(Refusal):
    """No credentials, or unknown or expired ones.

    ``error`` is the Bearer scheme's error code (RFC 6750), e.g. ``invalid_token``."""

    def __init__(self, detail: str, error: str | None = None, realm: str = "polystream"
                 ) -> None:
        super().__init__(detail)
        self.error = error
        self.realm = realm


class Forbidden(Refusal):
    """Known credentials that do not allow this."""


class Busy(Refusal):
    """Temporarily unable to serve this (a store down, the bus not acknowledging, too many
    sign-ups hashing at once); the caller should retry after ``retry_after_s``."""

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class TooMany(Busy):
    """This caller (an account, an address) made too many attempts in the window."""


class UpstreamRefused(Refusal):
    """A store refused a well-formed query (its answer is passed on, not hidden)."""
