"""`polystream users …`: account administration that no event carries (roles)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from polystream.settings import load_settings

app = typer.Typer(no_args_is_help=True, help="Accounts: grant or take back the operator role.")


def _set_role(email: str, role: str) -> None:
    from polystream.sinks.postgres.migrate import upgrade
    from polystream.sinks.postgres.store import PostgresAccountStore

    settings = load_settings()
    upgrade(settings.postgres)
    store = PostgresAccountStore(settings.postgres, application_name="polystream-cli")
    try:
        user_id = store.set_role(email, role)
    finally:
        store.close()
    if user_id is None:
        Console(stderr=True).print(f"[red]no live account with the email {email}[/]")
        raise typer.Exit(1)
    # A session carries the role it was opened with: ending them makes the change immediate
    # (a demoted operator must not keep operator sessions).
    from polystream.api.login.store import RedisSessionStore
    from polystream.sinks.redis_live import connect

    client = connect(settings.redis.url, socket_timeout_s=settings.redis.socket_timeout_s)
    try:
        ended = RedisSessionStore(client, settings.redis.key_prefix).revoke_all(user_id)
    finally:
        client.close()
    Console().print(f"{email} ({user_id}) is now {role!r}; {len(ended)} login session(s) "
                    "ended, the role applies from the next login")


@app.command()
def promote(email: Annotated[str, typer.Argument(help="The account's email.")]) -> None:
    """Make an account an operator (catalog, flags, audit)."""
    _set_role(email, "operator")


@app.command()
def demote(email: Annotated[str, typer.Argument(help="The account's email.")]) -> None:
    """Make an operator an ordinary user again."""
    _set_role(email, "user")
