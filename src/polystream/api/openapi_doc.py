"""The OpenAPI document as the API really answers: FastAPI documents its own validation-error
body (`HTTPValidationError`) for every 422, but every refusal here, 422 included, is an
`ErrorBody` (`errors.py`), so the document says so (checked by
tests/api/test_openapi_properties.py, which sends every operation generated requests)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from polystream.api.errors import ErrorBody

_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
_OURS = "#/components/schemas/ErrorBody"


def install_openapi(app: FastAPI) -> None:
    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _ours(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes))
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def _ours(doc: dict[str, Any]) -> dict[str, Any]:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorBody" not in schemas:
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas["ErrorBody"] = body
    for path in doc.get("paths", {}).values():
        for operation in path.values():
            unprocessable = operation.get("responses", {}).get("422")
            if unprocessable is None:
                continue
            for media in unprocessable.get("content", {}).values():
                if media.get("schema", {}).get("$ref") == _FASTAPI_422:
                    media["schema"] = {"$ref": _OURS}
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return doc
