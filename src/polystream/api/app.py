"""The write API (S1 over HTTP): `create_app(deps)` assembles routers, middleware and the
lifecycle. It builds no adapter and connects to nothing; see `bootstrap.py` for the real ones.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

from argon2 import Type
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from polystream.api.audit.router import make_router as make_audit_router
from polystream.api.auth import Operator, operator_session
from polystream.api.billing.router import router as billing_router
from polystream.api.catalog.router import router as catalog_router
from polystream.api.dashboard.router import make_router as make_dashboard_router
from polystream.api.deps import ApiDeps, ApiRuntime, Runtime
from polystream.api.docs_page import install_docs
from polystream.api.errors import install_error_handlers
from polystream.api.events.router import router as events_router
from polystream.api.flags.router import router as flags_router
from polystream.api.guard import AccessLog, RequestDeadline, RequestGuard, is_upload
from polystream.api.login.router import router as login_router
from polystream.api.me.router import router as me_router
from polystream.api.metrics import make_router as make_metrics_router
from polystream.api.openapi_doc import install_openapi
from polystream.api.playback.router import router as playback_router
from polystream.api.rankings.router import router as rankings_router
from polystream.api.ratings.router import router as ratings_router
from polystream.api.readiness import StoreProbes
from polystream.api.request_spans import RequestSpans
from polystream.api.titles.router import router as titles_router
from polystream.api.users.router import router as users_router
from polystream.bus.ports import PublishError
from polystream.domain.events import MAX_ASSET_BYTES, MAX_EVENT_BYTES
from polystream.observe import tracing

log = logging.getLogger("polystream.api")

#: Every JSON command fits in this, except a catalog title snapshot (a long series).
JSON_LIMIT_BYTES = 64 * 1024
#: A title snapshot can be as large as an event may be.
TITLE_LIMIT_BYTES = MAX_EVENT_BYTES
#: The image plus the multipart framing and the small `kind` field.
UPLOAD_LIMIT_BYTES = MAX_ASSET_BYTES + 16 * 1024

_TITLE_PATH = re.compile(r"^/catalog/titles/[^/]+/?$")
_READY_TIMEOUT_S = 3.0


def body_limit(method: str, path: str, content_type: str) -> int:
    if content_type.startswith("multipart/form-data"):
        return UPLOAD_LIMIT_BYTES if is_upload(path) else JSON_LIMIT_BYTES
    if method == "PUT" and _TITLE_PATH.match(path):
        return TITLE_LIMIT_BYTES
    return JSON_LIMIT_BYTES


DESCRIPTION = """
The API of polystream. Every command is validated, published as an event on Kafka and
answered `202 Accepted` with the event id and a `Location` to follow its progress through the
stores (`GET /events/{event_id}`).

* **Bad input** answers 4xx with field-level errors (`errors[].field` such as `body.stars`,
  `path.user_id`) and publishes nothing. Input values are never echoed.
* **Card data**: any request carrying something that looks like a card number or a CVV is
  refused with 422; payments carry the provider's token, the brand and the last four digits.
* **Passwords** are hashed with argon2id by the API; only the hash is published.
* **Read-your-writes**: send `?wait=N` (or `Prefer: wait=N`) to be answered once the stores
  concerned have processed the event: 201 (creations) / 200 when stored, 409 when a store
  rejected it (e.g. email already registered) or kept a newer version, 422 when it was
  dead-lettered, 202 when the wait runs out.
* **Publish failures** answer 503: the command was not accepted.
* **Public reads** (no login): `GET /titles` (filters, keyset cursor), `/titles/{id}`,
  `/titles/{id}/related`, `/titles/{id}/poster` from MongoDB, cached in Redis (`X-Cache`);
  `GET /rankings/{name}` and `GET /flags` (public flags) from Redis. A store that is down
  answers 503 within 2 s; the other endpoints keep working.
* **Auth**: `POST /auth/login` gives a bearer `access_token`; every user endpoint takes the
  user from it (never from a `user_id` in the request: another user's id answers 404).
  Catalog, flag and audit endpoints need an operator: an account with the `operator` role,
  or the operator token (`Authorization: Bearer <token>`).
"""


def create_app(deps: ApiDeps) -> FastAPI:
    if deps.password_hasher.type is not Type.ID:
        # The event contract only accepts argon2id hashes; failing here beats a 422 per sign-up.
        raise ValueError("the password hasher must use argon2id")
    runtime = ApiRuntime(deps)
    probes = StoreProbes(_READY_TIMEOUT_S)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            runtime.shutting_down = True
            await asyncio.to_thread(_shutdown, runtime)
            if deps.reads is not None:
                await deps.reads.close()

    app = FastAPI(
        title="polystream write API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served from vendored files by `install_docs` (no CDN); ReDoc would need one.
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    install_openapi(app)
    # Added last = runs first: the guard must see the raw request before anything parses it,
    # the deadline covers reading the body too, and the access log wraps even the refusals.
    api_settings = deps.settings.api
    app.add_middleware(
        RequestGuard,
        limit_for=body_limit,
        operator_token=api_settings.operator_token.get_secret_value(),
        resolve_operator=lambda token: operator_session(runtime, token),
        body_timeout_s=api_settings.body_timeout_s,
    )
    app.add_middleware(RequestDeadline, timeout_s=api_settings.request_timeout_s)
    app.add_middleware(AccessLog)
    if tracing.enabled():
        # Outermost: the span covers the guard's refusals and the access log's line.
        app.add_middleware(RequestSpans)
    for router in (
        login_router,
        me_router,
        users_router,
        billing_router,
        playback_router,
        ratings_router,
        catalog_router,
        flags_router,
        events_router,
    ):
        app.include_router(router)
    if deps.settings.observability.api_metrics:
        app.include_router(
            make_metrics_router(deps.settings.observability.metrics_require_token))
    if deps.audit is not None:
        app.include_router(make_audit_router(deps.audit, guard=Operator))
    if deps.observatory is not None:
        app.include_router(make_dashboard_router(deps.observatory, guard=Operator))
    install_docs(app)
    if deps.reads is not None:
        app.state.reads = deps.reads
        app.include_router(titles_router)
        app.include_router(rankings_router)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The API can accept commands (the event bus is usable)",
        description="`checks` also reports each store the API reads (`receipts`, `postgres`, "
        "`audit` (OpenSearch), `mongo`, `redis`), all asked at once within 3 s: a store that "
        "is down makes the endpoints that need it answer 503, not the API unready.",
        responses={503: {"description": "Not ready; `checks` says why."}},
    )
    async def readyz(runtime: Runtime) -> JSONResponse:
        return await _readiness(runtime, probes)

    return app


async def _readiness(runtime: ApiRuntime, probes: StoreProbes) -> JSONResponse:
    checks: dict[str, Any] = {}
    ready = True
    if runtime.shutting_down:
        checks["publisher"] = "shutting down"
        ready = False
    elif runtime.deps.ready_check is not None:
        try:
            await asyncio.wait_for(asyncio.to_thread(runtime.deps.ready_check), _READY_TIMEOUT_S)
            checks["publisher"] = "ok"
        except TimeoutError:
            checks["publisher"] = f"no answer within {_READY_TIMEOUT_S:g}s"
            ready = False
        except Exception as exc:
            checks["publisher"] = f"unusable: {exc}"
            ready = False
    else:
        checks["publisher"] = "ok"
    checks.update(await _store_checks(runtime.deps, probes))
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


async def _store_checks(deps: ApiDeps, probes: StoreProbes) -> dict[str, str]:
    """Every store the API reads, asked at once. None makes the API unready: each serves some
    endpoints (receipts: `wait` and /events; PostgreSQL: login and /me; OpenSearch: /audit;
    MongoDB and Redis: the public reads), which answer 503 while it is down, and commands
    are still accepted."""
    accounts, audit = deps.accounts, deps.audit
    named: dict[str, Awaitable[str]] = {
        "receipts": probes.check("receipts", lambda: deps.receipts.get(uuid4()))}
    if accounts is not None:
        # A primary-key lookup of nobody: a round trip through the API's own pool.
        named["postgres"] = probes.check("postgres", lambda: accounts.get_user("readyz"))
    if audit is not None:
        # OpenSearch in the stack (JSONL files without it): what the /audit endpoints read.
        named["audit"] = probes.check("audit", audit.count)

    async def reads() -> dict[str, str]:
        return await deps.reads.check() if deps.reads is not None else {}

    answers, read_checks = await asyncio.gather(asyncio.gather(*named.values()), reads())
    return {**dict(zip(named, answers, strict=True)), **read_checks}


def _shutdown(runtime: ApiRuntime) -> None:
    try:
        runtime.deps.publisher.flush(runtime.settings.api.publish_timeout_s)
    except PublishError as exc:
        log.error("flushing the publisher at shutdown: %s", exc)
    runtime.close()
    for close in runtime.deps.closers:
        try:
            close()
        except Exception:
            log.exception("closing %r at shutdown failed", close)
