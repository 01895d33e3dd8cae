"""`polystream users …`: account administration: roles (no event carries them) and erasure on
an operator's behalf (a request received by other means than `DELETE /me`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from polystream.settings import load_settings

app = typer.Typer(no_args_is_help=True,
                  help="Accounts: grant or take back the operator role; erase an account.")


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
    from polystream.stores.redis_client import connect

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


@app.command()
def erase(email: Annotated[str, typer.Argument(help="The account's email.")]) -> None:
    """Erase an account (right to be forgotten): publishes user.erased (reason admin) and ends
    its login sessions. Irreversible."""
    from polystream.api.login.store import RedisSessionStore
    from polystream.bootstrap import publisher
    from polystream.bus.topology import topic_of
    from polystream.domain.events import ErasureReason, UserErased, encode, new_event
    from polystream.observe.tracing import event_headers
    from polystream.sinks.postgres.store import PostgresAccountStore
    from polystream.stores.redis_client import connect

    settings = load_settings()
    store = PostgresAccountStore(settings.postgres, application_name="polystream-cli")
    try:
        found = store.get_user_by_email(email)
    finally:
        store.close()
    if found is None:
        Console(stderr=True).print(f"[red]no live account with the email {email}[/]")
        raise typer.Exit(1)
    event = new_event(UserErased(user_id=found.user_id, reason=ErasureReason.ADMIN),
                      source="cli")
    bus = publisher(settings, "cli-users")
    try:
        bus.publish(topic_of(event.type).value, event.key, encode(event),
                    event_headers(event.trace_id, str(event.event_id)))
        bus.flush(30)
    finally:
        bus.close(10)
    # The Redis sink ends them too when it applies the event; this makes it immediate.
    client = connect(settings.redis.url, socket_timeout_s=settings.redis.socket_timeout_s)
    try:
        ended = RedisSessionStore(client, settings.redis.key_prefix).revoke_all(found.user_id)
    finally:
        client.close()
    Console().print(f"{found.user_id}: user.erased published ({event.event_id}); "
                    f"{len(ended)} login session(s) ended")
