"""/users: registration, profile, preferences."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from polystream.api.auth import CurrentUser
from polystream.api.command_http import (
    USER_AUTH,
    CommandRoutes,
    Options,
    answer,
    command_responses,
    own_user_command,
)
from polystream.api.deps import Runtime
from polystream.api.fields import UserIdPath
from polystream.api.ownership import own_user_id
from polystream.api.users import service
from polystream.api.users.schemas import (
    RegisterUser,
    RegistrationAccepted,
    SetPreferences,
    UpdateProfile,
)

router = APIRouter(tags=["users"])

# Erasure acts on the caller, whose id is in no path: its description says all.
erasure = CommandRoutes(USER_AUTH, note="")


@router.post(
    "/users",
    status_code=202,
    response_model=RegistrationAccepted,
    responses={
        422: command_responses()[422],
        413: command_responses()[413],
        503: command_responses()[503],
    },
    summary="Register an account",
    description="Publishes `user.registered`. The password is hashed with argon2id here and "
    "only the hash is published. Every valid request gets the same `202` (no event id, "
    "`wait` is ignored): a taken email is refused by the PostgreSQL store without telling "
    "the caller, so the endpoint cannot be used to find out who has an account. Log in "
    "(`POST /auth/login`) once the account exists; `GET /me` gives its id.",
)
async def register_user(body: RegisterUser, runtime: Runtime, options: Options) -> JSONResponse:
    return JSONResponse((await service.register(runtime, body, options)).model_dump(mode="json"),
                        202)


@own_user_command(router.patch, "/users/{user_id}", summary="Update a profile",
                  description="Publishes `user.profile_updated` with the fields sent.")
async def update_profile(
    user_id: UserIdPath, body: UpdateProfile, principal: CurrentUser, runtime: Runtime,
    options: Options,
) -> JSONResponse:
    own_user_id(principal, user_id)
    return answer(await service.update_profile(runtime, user_id, body, options))


@own_user_command(router.put, "/users/{user_id}/preferences",
                  summary="Replace a user's preferences",
                  description="Publishes `preferences.updated` (a full snapshot).")
async def set_preferences(
    user_id: UserIdPath, body: SetPreferences, principal: CurrentUser, runtime: Runtime,
    options: Options,
) -> JSONResponse:
    own_user_id(principal, user_id)
    return answer(await service.set_preferences(runtime, user_id, body, options))


@erasure(
    router.delete, "/me",
    summary="Erase my account (right to be forgotten)",
    description="Publishes `user.erased` (reason `user_request`) and ends every login session "
    "of the caller at once (`session.ended`, reason `user_erased`): the token sent stops "
    "working with this answer. The stores then delete or anonymise the person's data (see "
    "docs/events.md, `user.erased`). Irreversible; the email is free for a new account.",
)
async def erase_me(principal: CurrentUser, runtime: Runtime, options: Options) -> JSONResponse:
    return answer(await service.erase_me(runtime, own_user_id(principal, None), options))
