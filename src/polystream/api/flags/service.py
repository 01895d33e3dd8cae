"""Flag commands -> flag.set."""

from __future__ import annotations

from polystream.api.commands import Command, CommandOptions, CommandResult, submit
from polystream.api.deps import ApiRuntime
from polystream.api.flags.schemas import SetFlag
from polystream.domain.events import FlagSet


async def set_flag(
    runtime: ApiRuntime, name: str, body: SetFlag, options: CommandOptions
) -> CommandResult:
    payload = {"name": name, "value": body.value, "scope": body.scope}
    return await submit(
        runtime, options, Command(FlagSet, payload, where={"name": "path.name"})
    )
