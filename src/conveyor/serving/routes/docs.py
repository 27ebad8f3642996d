"""The Swagger UI page at ``/docs`` and its assets, served by this app: the page loads nothing
from another host (FastAPI's default takes them from a public CDN without an integrity hash).

The assets are Swagger UI's release files as shipped by the ``fastapi-offline`` package.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from conveyor.serving.errors import ApiError

ASSETS_PATH = "/docs/static"
_ASSETS = {  # file -> media type; nothing else of the package is served
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
# The page's own inline script starts Swagger UI; everything else must come from this server.
_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)


def page(*, title: str, openapi_url: str) -> HTMLResponse:
    """The Swagger UI page for the spec at ``openapi_url``, with assets from this server."""
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        # the spec validator badge would send the spec's URL to validator.swagger.io
        swagger_ui_parameters={"validatorUrl": None},
    )
    html.headers["Content-Security-Policy"] = _CSP
    return html


def asset(name: str) -> FileResponse:
    """One of Swagger UI's files.

    Raises:
        ApiError: 404 for any other name.
    """
    media = _ASSETS.get(name)
    if media is None:
        raise ApiError(404, "not_found", "no such file")
    return FileResponse(
        _directory() / name,
        media_type=media,
        headers={"Cache-Control": "public, max-age=86400"},
    )


@cache
def _directory() -> Path:
    return Path(str(files("fastapi_offline") / "static"))
