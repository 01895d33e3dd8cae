"""The operator check on the raw request, before any body is read.

The routers keep their own `Operator` dependency (it documents the requirement in OpenAPI and
stays correct if a route is mounted elsewhere); this gate runs first, in the request guard, so
that an anonymous client cannot make the server read, parse or scan a body of up to 1 MiB on
a path only operators may use. Same answers as the dependency: 401 when the token is missing,
unknown or expired, 403 for a user who is not an operator.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Final

from polystream.api.refusals import Forbidden, Refusal, Unauthenticated

#: Path prefixes where only operators may write (the catalog and flag commands)...
OPERATOR_WRITE_PREFIXES: Final = ("/catalog", "/flags")
#: ...and where only operators may do anything (the audit trail).
OPERATOR_PREFIXES: Final = ("/audit",)
# Reads of the catalogue may become public (a read API); a read carries no body worth
# refusing early, so only writes are gated there.
_READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

_REALM: Final = "polystream-operator"


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def needs_operator(method: str, path: str) -> bool:
    if _under(path, OPERATOR_PREFIXES):
        return True
    return method.upper() not in _READS and _under(path, OPERATOR_WRITE_PREFIXES)


def _digest(token: str) -> bytes:
    # compare_digest leaks the length of its inputs through timing; equal-length digests
    # leave nothing to learn about the configured token.
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).digest()


#: Whether a bearer token belongs to an operator: True, False (a user), None (no session).
Resolve = Callable[[str], Awaitable[bool | None]]


async def operator_refusal(configured: str, authorization: str | None,
                           resolve: Resolve | None = None) -> Refusal | None:
    """Why a request with this ``Authorization`` header may not use an operator path, or
    None when it may: the operator token, or the access token of an operator account."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return Unauthenticated("operator access required: send 'Authorization: Bearer "
                               "<token>' (an operator's access_token or the operator token)",
                               realm=_REALM)
    if configured and hmac.compare_digest(_digest(token), _digest(configured)):
        return None
    is_operator = await resolve(token) if resolve is not None else None
    if is_operator is None:
        return Unauthenticated("invalid or expired token; log in again", "invalid_token",
                               realm=_REALM)
    if not is_operator:
        return Forbidden("operators only")
    return None


__all__ = [
    "OPERATOR_PREFIXES",
    "OPERATOR_WRITE_PREFIXES",
    "Refusal",
    "Resolve",
    "needs_operator",
    "operator_refusal",
]
