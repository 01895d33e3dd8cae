"""GET /metrics: the process's Prometheus metrics (cache hits and misses of the reads among
them), for operators: the counters say how the platform is used."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from polystream.api.auth import Operator
from polystream.api.errors import ErrorBody

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics of this API process",
    description="Text exposition format; among others `polystream_read_cache_lookups_total`. "
    "Operators only: `Authorization: Bearer <operator token>`.",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "The metrics."},
               401: {"model": ErrorBody, "description": "Missing or invalid operator token."},
               403: {"model": ErrorBody, "description": "Operator endpoints are disabled."}},
    dependencies=[Operator],
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
