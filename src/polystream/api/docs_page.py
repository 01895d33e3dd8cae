"""``/docs`` from vendored Swagger UI files (swagger-ui-dist 5.35.0 from the npm registry,
Apache-2.0, see ``docs_static/LICENSE-swagger-ui``): no CDN, so the page works offline and
leaks nothing to a third party."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from polystream.api.packaged_files import packaged_file

SWAGGER_UI_VERSION = "5.35.0"
_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
_STATIC = resources.files("polystream.api") / "docs_static"


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets; the app must be created with ``docs_url=None``."""

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - docs",
            swagger_js_url=f"/docs/static/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}",
            swagger_css_url=f"/docs/static/swagger-ui.css?v={SWAGGER_UI_VERSION}",
            swagger_favicon_url="data:,")

    @app.get("/docs/static/{name}", include_in_schema=False)
    async def docs_static(name: str) -> Response:
        return packaged_file(_STATIC, _FILES, name, what="docs",
                             cache_control="public, max-age=86400")

