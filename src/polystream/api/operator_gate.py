"""The operator check on the raw request, before any body is read.

The routers keep their own `Operator` dependency (it documents the requirement in OpenAPI and
stays correct if a route is mounted elsewhere); this gate runs first, in the request guard, so
that an anonymous client cannot make the server read, parse or scan a body of up to 1 MiB on
a path only operators may use. Same answers as the dependency: 403 when no token is
configured, 401 when it is missing or wrong.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

#: Path prefixes where only operators may write (the catalog and flag commands)...
OPERATOR_WRITE_PREFIXES: Final = ("/catalog", "/flags")
#: ...and where only operators may do anything (the audit trail).
OPERATOR_PREFIXES: Final = ("/audit",)
# Reads of the catalogue may become public (a read API); a read carries no body worth
# refusing early, so only writes are gated there.
_READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

_REALM: Final = 'Bearer realm="polystream-operator"'


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    detail: str
    headers: dict[str, str]


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


def operator_refusal(configured: str, authorization: str | None) -> Refusal | None:
    """Why a request with this ``Authorization`` header may not use an operator path, or
    None when it may."""
    if not configured:
        return Refusal(403, "operator endpoints are disabled: no operator token is configured "
                       "(set POLYSTREAM_API__OPERATOR_TOKEN)", {})
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Refusal(401, "operator token required: send 'Authorization: Bearer "
                       "<operator token>'", {"WWW-Authenticate": _REALM})
    if not hmac.compare_digest(_digest(token.strip()), _digest(configured)):
        return Refusal(401, "invalid operator token",
                       {"WWW-Authenticate": f'{_REALM}, error="invalid_token"'})
    return None


__all__ = [
    "OPERATOR_PREFIXES",
    "OPERATOR_WRITE_PREFIXES",
    "Refusal",
    "needs_operator",
    "operator_refusal",
]
