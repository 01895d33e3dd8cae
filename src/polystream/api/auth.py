"""Who is calling: the bearer token of a login session, or the operator token.

Identity comes from the token only. A user session carries the user id and the account's
role (``user`` or ``operator``, read at login); the shared operator token
(``settings.api.operator_token``) is for automation and identifies no user, so it opens the
operator endpoints and nothing that belongs to a user.

Answers: no or unknown token where one is needed -> 401 with ``WWW-Authenticate``; a valid
identity that lacks the right -> 403; another user's resource -> 404 (see ``ownership.py``),
so that ids cannot be probed.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from polystream.api.deps import ApiRuntime, Runtime
from polystream.api.login.tokens import token_digest
from polystream.api.refusals import Busy, Forbidden, Unauthenticated

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A login session's `access_token` (`POST /auth/login`), or the operator "
    "token (`POLYSTREAM_API__OPERATOR_TOKEN`) for the operator endpoints.",
)

STORE_DOWN = "the session store is unavailable; retry later"


@dataclass(frozen=True, slots=True)
class Principal:
    #: None for the operator token, which stands for no user.
    user_id: str | None
    role: str
    session_id: str | None = None
    digest: str | None = None

    @property
    def operator(self) -> bool:
        return self.role == "operator"


def _digest(token: str) -> bytes:
    # compare_digest leaks the length of its inputs through timing; equal-length digests
    # leave nothing to learn about the configured token.
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).digest()


async def _resolve(runtime: ApiRuntime, token: str) -> Principal | None:
    configured = runtime.settings.api.operator_token.get_secret_value()
    if configured and hmac.compare_digest(_digest(token), _digest(configured)):
        return Principal(user_id=None, role="operator")
    digest = token_digest(token)
    try:
        session = await runtime.lookup(
            runtime.deps.sessions.touch, digest, runtime.settings.api.session_ttl_s
        )
    except Exception as exc:
        raise Busy(STORE_DOWN, retry_after_s=1) from exc
    if session is None:
        return None
    return Principal(session.user_id, session.role, session.session_id, digest)


async def operator_session(runtime: ApiRuntime, token: str) -> bool | None:
    """For the request guard: is ``token`` an operator's (True), a user's (False), or
    nobody's (None)? Raises when the session store does not answer."""
    principal = await _resolve(runtime, token)
    return None if principal is None else principal.operator


async def optional_principal(
    runtime: Runtime,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    if credentials is None:
        return None
    principal = await _resolve(runtime, credentials.credentials)
    if principal is None:
        raise Unauthenticated("invalid or expired token; log in again", "invalid_token")
    return principal


MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


async def require_user(principal: MaybePrincipal) -> Principal:
    if principal is None:
        raise Unauthenticated("login required: send 'Authorization: Bearer <access_token>' "
                            "from POST /auth/login")
    if principal.user_id is None:
        raise Forbidden("the operator token stands for no user; log in as a user")
    return principal


async def require_operator(runtime: Runtime, principal: MaybePrincipal) -> Principal:
    if principal is None:
        raise Unauthenticated("operator access required: send 'Authorization: Bearer <token>' "
                            "(an operator's access_token or the operator token)")
    if not principal.operator:
        raise Forbidden("operators only")
    return principal


CurrentUser = Annotated[Principal, Depends(require_user)]
Operator = Depends(require_operator)
OperatorPrincipal = Annotated[Principal, Depends(require_operator)]
