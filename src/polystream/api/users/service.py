"""User commands -> user.* / preferences.* events."""

from __future__ import annotations

from uuid6 import uuid7

from polystream.api.commands import Command, CommandOptions, CommandResult, accept, submit
from polystream.api.deps import ApiRuntime, HashingBusy
from polystream.api.login.service import end_every_session
from polystream.api.refusals import Busy
from polystream.api.users.schemas import (
    RegisterUser,
    RegistrationAccepted,
    SetPreferences,
    UpdateProfile,
)
from polystream.domain.events import (
    ErasureReason,
    PreferencesUpdated,
    UserErased,
    UserProfileUpdated,
    UserRegistered,
)

_USER_IN_PATH = {"user_id": "path.user_id"}


async def register(
    runtime: ApiRuntime, body: RegisterUser, options: CommandOptions
) -> RegistrationAccepted:
    # The plain password lives only in this frame and the hashing thread; the event, the
    # logs and every response carry at most the argon2id hash.
    try:
        password_hash = await runtime.hash_password(body.password.get_secret_value())
    except HashingBusy:
        raise Busy("too many sign-ups at once; retry shortly", retry_after_s=1) from None
    user_id = str(uuid7())
    payload = {
        "user_id": user_id,
        "email": body.email,
        "display_name": body.display_name,
        "country": body.country,
        "birth_year": body.birth_year,
        "password_hash": password_hash,
    }
    # Not `submit`: whatever the stores decide (a taken email is refused there), the answer
    # is the same, with no event id to follow, so nobody can learn which emails have accounts.
    # The new user learns their id from GET /me once logged in.
    await accept(runtime, options, Command(UserRegistered, payload))
    return RegistrationAccepted()


async def update_profile(
    runtime: ApiRuntime, user_id: str, body: UpdateProfile, options: CommandOptions
) -> CommandResult:
    payload = {"user_id": user_id, **body.model_dump(exclude_unset=True)}
    return await submit(
        runtime, options, Command(UserProfileUpdated, payload, where=_USER_IN_PATH)
    )


async def set_preferences(
    runtime: ApiRuntime, user_id: str, body: SetPreferences, options: CommandOptions
) -> CommandResult:
    payload = {"user_id": user_id, **body.model_dump()}
    return await submit(
        runtime, options, Command(PreferencesUpdated, payload, where=_USER_IN_PATH)
    )


async def erase_me(runtime: ApiRuntime, user_id: str, options: CommandOptions) -> CommandResult:
    # The event first: if the bus refuses it the account is untouched and the caller, still
    # logged in, may retry. Once it is accepted the erasure is certain, so the tokens end now
    # rather than when the Redis sink gets to the event (it deletes them too, as a backstop).
    result = await submit(
        runtime, options,
        Command(UserErased, {"user_id": user_id, "reason": ErasureReason.USER_REQUEST.value}),
    )
    await end_every_session(runtime, user_id)
    return result
