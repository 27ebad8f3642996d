"""Signing in to the UI with an API key: a signed session cookie, scopes, CSRF tokens.

The key is checked once, at sign-in, by the model server's :class:`KeyRing` (constant time; the
key is never logged, only its name). The session cookie (HttpOnly, SameSite=Strict, Secure under
https, signed with the server's secret, 12 hours) then carries the key's id and the session's
CSRF token. Every request re-reads the key, so revoking it ends its sessions at once. Pages need
``read``, actions ``admin``. Every POST must come from this server's origin (Origin, else
Referer, and Sec-Fetch-Site when the browser sends them) and an action must also carry the
session's CSRF token as the form field ``csrf``.

``--no-auth`` (loopback only, enforced by ``conveyor ui``) gives every request a session with
read and admin, but only for requests addressed to a loopback name: a page of another site that
rebinds its DNS name to 127.0.0.1 is refused (its Host header names that site).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from conveyor.serving.auth import ADMIN, READ, AuthResult, KeyRing

if TYPE_CHECKING:
    from starlette.responses import Response

    from conveyor.store.metadata import ApiKeyRecord
    from conveyor.ui.app import UiState

log = logging.getLogger("conveyor.ui")

COOKIE = "conveyor_session"
MAX_AGE = 12 * 3600
NO_AUTH_SCOPES = (READ, ADMIN)
_SALT = "conveyor-ui-session"
_CACHED = "conveyor.session"  # where a request keeps its session once looked up
_SECRET_LOCK = threading.Lock()
_REFUSED = {
    AuthResult.MISSING: "Paste an API key to sign in.",
    AuthResult.INVALID: "That key is not valid: check that it was pasted whole.",
    AuthResult.REVOKED: "That key was revoked: ask for a new one.",
    AuthResult.SCOPE: (
        f"That key lacks the {READ!r} scope (it is probably a model server key): create one "
        "with 'conveyor keys create --name NAME --scope read'."
    ),
}

router = APIRouter()


@dataclass(frozen=True)
class Session:
    """Who is signed in: the key's id and name (the actor of audit events), its scopes, and the
    CSRF token of this session."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    csrf: str = field(repr=False)

    @property
    def actor(self) -> str:
        """How audit events name this user: ``ui:KEYNAME``."""
        return f"ui:{self.name}"

    def can(self, scope: str) -> bool:
        """Whether the session's key holds ``scope``."""
        return scope in self.scopes


class NotSignedIn(Exception):
    """Raised by page dependencies; the app turns it into a redirect to the sign-in page."""


def current_session(request: Request) -> Session | None:
    """The request's session, or None (cached on the request).

    Raises:
        HTTPException: 403 under ``--no-auth`` for a request not addressed to a loopback name.
    """
    if _CACHED in request.scope:
        found: Session | None = request.scope[_CACHED]
        return found
    request.scope[_CACHED] = None  # so the error page of a refusal below renders signed out
    found = _session_of(request)
    request.scope[_CACHED] = found
    return found


def require(scope: str) -> Any:
    """A dependency: the session, which must hold ``scope`` (no session: to the sign-in page;
    a session without the scope: 403)."""

    def dependency(request: Request) -> Session:
        session = current_session(request)
        if session is None:
            raise NotSignedIn
        if not session.can(scope):
            raise HTTPException(403, f"this needs an API key with the {scope!r} scope")
        return session

    return Depends(dependency)


def require_action() -> Any:
    """A dependency for POSTs that change something: ``admin``, same origin, the CSRF token."""

    async def dependency(request: Request) -> Session:
        session = current_session(request)
        if session is None:
            raise NotSignedIn
        if not session.can(ADMIN):
            raise HTTPException(403, f"this action needs an API key with the {ADMIN!r} scope")
        check_origin(request)
        form = await request.form()
        token = form.get("csrf")
        # compare bytes: compare_digest refuses str with non-ASCII characters (a 500, not a 403)
        if not isinstance(token, str) or not hmac.compare_digest(
            token.encode(), session.csrf.encode()
        ):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
        return session

    return Depends(dependency)


def check_origin(request: Request) -> None:
    """Refuse a cross-site POST: what the browser says about where it comes from (Origin, else
    Referer; Sec-Fetch-Site) must be this server. A client that sends none of them is no
    browser acting for someone else; an action still needs its CSRF token.

    Raises:
        HTTPException: 403 naming the foreign origin.
    """
    expected = f"{request.url.scheme}://{request.url.netloc}"
    origin = request.headers.get("origin")
    if origin is None and (referer := request.headers.get("referer")):
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin is not None and origin != expected:
        raise HTTPException(403, f"cross-origin request from {origin[:100]} refused")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise HTTPException(403, f"cross-site request ({site[:20]}) refused")


ReadSession = Annotated[Session, require(READ)]
"""A page's parameter: the signed-in session, which may read."""
AdminAction = Annotated[Session, require_action()]
"""An action's parameter: an admin session whose POST carried its CSRF token."""


@router.get("/signin")
def signin_page(request: Request, next: str = "/") -> Response:
    """The sign-in form (a signed-in visitor goes straight on to ``next``)."""
    from conveyor.ui.app import render

    if current_session(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "signin.html", next=_safe_next(next), error=None)


@router.post("/signin")
def signin(
    request: Request, key: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/"
) -> Response:
    """Check the pasted key; on success set the session cookie and go on to ``next``."""
    from conveyor.ui.app import render, state_of

    check_origin(request)
    state = state_of(request)
    result, record = KeyRing(state.metadata.list_api_keys).verify(key.strip(), scope=READ)
    client = request.client.host if request.client else "?"
    if result is not AuthResult.OK or record is None:
        # the key's name when its id was known, never the key
        log.warning(
            "ui sign-in refused (%s) from %s for key %s",
            result.value,
            client,
            record.name if record is not None else "-",
        )
        return render(
            request, "signin.html", status_code=401, next=_safe_next(next), error=_REFUSED[result]
        )
    log.info("ui sign-in of key %s from %s", record.name, client)
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(request, response, state, record)
    return response


@router.post("/signout")
def signout(request: Request) -> Response:
    """End the session in this browser. Only the Origin is checked: signing out changes nothing
    stored, and a cross-site POST would not carry the SameSite=Strict cookie anyway."""
    check_origin(request)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


def _set_cookie(request: Request, response: Response, state: UiState, key: ApiKeyRecord) -> None:
    """A new session (a fresh CSRF token) for ``key``: only its id and the token, signed."""
    csrf = secrets.token_urlsafe(24)
    response.set_cookie(
        COOKIE,
        _serializer(state).dumps([key.key_id, csrf]),
        max_age=MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def _session_of(request: Request) -> Session | None:
    from itsdangerous import BadSignature

    from conveyor.ui.app import state_of

    state = state_of(request)
    if not state.auth:
        if not _loopback_name(request.url.hostname):
            raise HTTPException(
                403,
                "without sign-in (--no-auth) this server answers only requests to 127.0.0.1, "
                "localhost or [::1]",
            )
        return Session("-", "local", NO_AUTH_SCOPES, _no_auth_csrf(state))
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        key_id, csrf = _serializer(state).loads(raw, max_age=MAX_AGE)
    except (BadSignature, ValueError, TypeError):
        return None
    key = next((k for k in state.metadata.list_api_keys() if k.key_id == key_id), None)
    if key is None or key.revoked or READ not in key.scopes or not isinstance(csrf, str):
        return None
    return Session(key.key_id, key.name, key.scopes, csrf)


def _serializer(state: UiState) -> Any:
    from itsdangerous import URLSafeTimedSerializer

    return URLSafeTimedSerializer(_secret(state), salt=_SALT)


def _no_auth_csrf(state: UiState) -> str:
    """--no-auth still protects its forms: one token per server process, from its secret."""
    return hmac.new(_secret(state), b"no-auth-csrf", "sha256").hexdigest()


def _secret(state: UiState) -> bytes:
    """The state's secret; an empty one (an app built without it) becomes a random one, since
    anyone could sign a session cookie with an empty key."""
    with _SECRET_LOCK:
        if not state.secret:
            state.secret = secrets.token_bytes(32)
        return state.secret


def _loopback_name(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _safe_next(target: str) -> str:
    """Only a path on this server: never ``//host``, ``/\\host`` (browsers read a backslash as
    a slash) nor anything with whitespace or control characters (browsers drop tabs and
    newlines, so ``/<TAB>/host`` is ``//host``): no open redirect."""
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(c <= " " or c == "\x7f" for c in target)
    ):
        return "/"
    return target
