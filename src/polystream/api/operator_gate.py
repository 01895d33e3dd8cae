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

#: Path prefixes that only operators may use (the catalog, flag and audit routers).
OPERATOR_PREFIXES: Final = ("/catalog", "/flags", "/audit")

_REALM: Final = 'Bearer realm="polystream-operator"'


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    detail: str
    headers: dict[str, str]


def needs_operator(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in OPERATOR_PREFIXES)


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


__all__ = ["OPERATOR_PREFIXES", "Refusal", "needs_operator", "operator_refusal"]
