"""/auth/login, /auth/logout, /me/sessions."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from polystream.api.auth import CurrentUser
from polystream.api.deps import Runtime
from polystream.api.errors import ErrorBody
from polystream.api.login import service
from polystream.api.login.schemas import (
    AccessToken,
    Login,
    LoginSessions,
    LoginSessionView,
    SessionsRevoked,
)

router = APIRouter(tags=["login"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "No token, or an unknown or expired one."},
    403: {"model": ErrorBody, "description": "The operator token stands for no user."},
    503: {"model": ErrorBody, "description": "The session store or the event bus is "
          "unavailable."},
}


@router.post(
    "/auth/login",
    response_model=AccessToken,
    responses={
        401: {"model": ErrorBody, "description": "Wrong email or password (the same answer, "
              "after the same work, for both)."},
        422: {"model": ErrorBody, "description": "Malformed body."},
        429: {"model": ErrorBody, "description": "Too many attempts for this account or from "
              "this address; `Retry-After` says when to try again."},
        503: {"model": ErrorBody, "description": "The account store, the session store or the "
              "event bus is unavailable."},
    },
    summary="Log in",
    description="Verifies the password against the account's argon2id hash and opens a login "
    "session: a random 256-bit bearer token (only its SHA-256 is stored, in Redis), valid "
    "for `expires_in` seconds after its last use. Publishes `session.login_started`.",
)
async def login(body: Login, request: Request, runtime: Runtime) -> JSONResponse:
    host = request.client.host if request.client else None
    token = await service.login(runtime, body, host)
    return JSONResponse(token.model_dump(mode="json"), headers=_NO_STORE)


@router.post(
    "/auth/logout",
    status_code=204,
    responses=_AUTH_ERRORS,
    summary="Log out (end this session)",
    description="Ends the session of the token sent; publishes `session.ended` (logout).",
)
async def logout(principal: CurrentUser, runtime: Runtime) -> Response:
    await service.logout(runtime, principal)
    return Response(status_code=204)


@router.get(
    "/me/sessions",
    response_model=LoginSessions,
    responses=_AUTH_ERRORS,
    summary="My login sessions",
)
async def my_sessions(principal: CurrentUser, runtime: Runtime) -> JSONResponse:
    found = await service.list_sessions(runtime, principal)
    body = LoginSessions(sessions=[
        LoginSessionView(session_id=s.session_id,
                         expires_at=datetime.fromtimestamp(s.expires_at, UTC),
                         current=s.session_id == principal.session_id)
        for s in sorted(found, key=lambda s: s.session_id)
    ])
    return JSONResponse(body.model_dump(mode="json"), headers=_NO_STORE)


@router.delete(
    "/me/sessions",
    response_model=SessionsRevoked,
    responses=_AUTH_ERRORS,
    summary="Log out everywhere",
    description="Ends every session of the user, this one included; publishes "
    "`session.ended` (revoked) for each.",
)
async def revoke_my_sessions(principal: CurrentUser, runtime: Runtime) -> SessionsRevoked:
    return SessionsRevoked(revoked=await service.revoke_all(runtime, principal))
