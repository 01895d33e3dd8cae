"""Operator read side of the audit trail: ``GET /audit/events`` and ``GET /audit/events/{id}``.

Built by `make_router(index, operator_token)`; the application includes the router.
"""

from __future__ import annotations

from polystream.api.audit.router import make_router

__all__ = ["make_router"]
