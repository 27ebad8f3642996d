"""The UI's FastAPI application: stores, templates, security headers, the page routers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from jinja2 import Environment
    from starlette.responses import Response

    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import SqlMetadataStore

HERE = Path(__file__).resolve().parent
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'; connect-src 'self'"
)
"""Nothing from another origin: no CDN, no font service, no inline script."""


@dataclass
class UiState:
    """What every page reads: the project's stores and how sign-in works."""

    metadata: SqlMetadataStore
    artifacts: AbstractArtifactStore
    project: str
    auth: bool = True  # False only with --no-auth on a loopback address
    secret: bytes = b""  # signs the session cookies (random per process unless configured)
    promote_alias: str = "production"  # registry.promote.alias: the alias "promote" moves
    require_approval: bool = True  # registry.promote.require_approval (safe default: yes)


def create_app(state: UiState) -> FastAPI:
    """The UI app over ``state``'s stores."""
    from conveyor.ui import auth
    from conveyor.ui.pages import PAGE_ROUTERS

    app = FastAPI(title="conveyor", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ui = state
    app.state.templates = _templates()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(auth.router)
    for router in PAGE_ROUTERS:
        app.include_router(router)

    @app.exception_handler(auth.NotSignedIn)
    async def to_signin(request: Request, exc: auth.NotSignedIn) -> Response:
        from urllib.parse import quote

        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def error_page(request: Request, exc: StarletteHTTPException) -> Response:
        return render(request, "error.html", status_code=exc.status_code, error=exc)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)  # the report keeps its own
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def state_of(request: Request) -> UiState:
    """The app's :class:`UiState`."""
    ui: UiState = request.app.state.ui
    return ui


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` (in ``conveyor/ui/templates``) inside the layout.

    The layout gets the project name, the signed-in session (or None) and its CSRF token, which
    every form posts back.
    """
    from conveyor.ui.auth import current_session

    env: Environment = request.app.state.templates
    session = current_session(request)
    html = env.get_template(template).render(
        request=request,
        project=state_of(request).project,
        session=session,
        csrf=session.csrf if session is not None else "",
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def _templates() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    from conveyor._text import fmt_seconds, fmt_time

    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = fmt_seconds
    env.filters["time"] = fmt_time
    return env
