"""Operator authentication for the catalog and flag endpoints.

A single shared bearer token (``settings.api.operator_token``) for now. User login and
per-user authorization come with the read API (they need the stored users); until then the
user-facing commands trust the ``user_id`` they are given.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from polystream.api.deps import Runtime
from polystream.api.errors import ApiError

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="operator",
    description="The operator token (`POLYSTREAM_API__OPERATOR_TOKEN`).",
)


def _digest(token: str) -> bytes:
    # compare_digest leaks the length of its inputs through timing; equal-length digests
    # leave nothing to learn about the configured token.
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).digest()


def require_operator(
    runtime: Runtime,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    configured = runtime.settings.api.operator_token.get_secret_value()
    if not configured:
        raise ApiError(
            403,
            "operator endpoints are disabled: no operator token is configured "
            "(set POLYSTREAM_API__OPERATOR_TOKEN)",
        )
    if credentials is None:
        raise ApiError(
            401,
            "operator token required: send 'Authorization: Bearer <operator token>'",
            headers={"WWW-Authenticate": 'Bearer realm="polystream-operator"'},
        )
    if not hmac.compare_digest(_digest(credentials.credentials), _digest(configured)):
        raise ApiError(
            401,
            "invalid operator token",
            headers={"WWW-Authenticate": 'Bearer realm="polystream-operator", '
                     'error="invalid_token"'},
        )


Operator = Depends(require_operator)
