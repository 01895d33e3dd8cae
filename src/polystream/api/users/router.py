"""/users: registration, profile, preferences."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from polystream.api.commands import Options, command_responses
from polystream.api.deps import Runtime
from polystream.api.fields import UserIdPath
from polystream.api.users import service
from polystream.api.users.schemas import RegisterUser, SetPreferences, UpdateProfile

router = APIRouter(tags=["users"])

_NO_AUTH_YET = (
    "\n\nNo per-user authorization yet: login and per-user access control come with the read "
    "API."
)


@router.post(
    "/users",
    status_code=202,
    responses=command_responses(creates=True),
    summary="Register an account",
    description="Publishes `user.registered`. The password is hashed with argon2id here and "
    "only the hash is published. `resource_id` is the new user's id. A taken email is "
    "refused by the PostgreSQL store: send `?wait=2` to get that as a 409." + _NO_AUTH_YET,
)
async def register_user(body: RegisterUser, runtime: Runtime, options: Options) -> JSONResponse:
    return await service.register(runtime, body, options)


@router.patch(
    "/users/{user_id}",
    status_code=202,
    responses=command_responses(),
    summary="Update a profile",
    description="Publishes `user.profile_updated` with the fields sent." + _NO_AUTH_YET,
)
async def update_profile(
    user_id: UserIdPath, body: UpdateProfile, runtime: Runtime, options: Options
) -> JSONResponse:
    return await service.update_profile(runtime, user_id, body, options)


@router.put(
    "/users/{user_id}/preferences",
    status_code=202,
    responses=command_responses(),
    summary="Replace a user's preferences",
    description="Publishes `preferences.updated` (a full snapshot)." + _NO_AUTH_YET,
)
async def set_preferences(
    user_id: UserIdPath, body: SetPreferences, runtime: Runtime, options: Options
) -> JSONResponse:
    return await service.set_preferences(runtime, user_id, body, options)
