"""``GET /metrics``: the API process's Prometheus metrics, on the API's own port.

Left out of the OpenAPI document (it is for scrapers, not clients). Unauthenticated by default,
as Prometheus scrapes usually are on a private network; with
``observability.metrics_require_token`` the scraper sends the operator token
(``authorization: {credentials: <token>, type: Bearer}`` in its scrape config).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from polystream.api.auth import require_operator


def make_router(require_token: bool) -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_operator)] if require_token else [])

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
