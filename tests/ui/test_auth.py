"""Signing in to the UI, over HTTP against a real uvicorn on loopback (no browser needed).

Besides the UI's own routes, the app under test mounts a tiny router of its own: a page
(``ReadSession``) and an action (``AdminAction``), so the checks do not depend on which pages
exist.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from fastapi import APIRouter

from conveyor.serving.auth import ADMIN, PREDICT, READ, create_key
from conveyor.serving.background import BackgroundServer
from conveyor.store.artifacts.memory import InMemoryArtifactStore
from conveyor.store.metadata import SqlMetadataStore, open_metadata_store
from conveyor.ui.app import UiState, create_app
from conveyor.ui.auth import COOKIE, AdminAction, ReadSession

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

SECRET = b"s" * 32
EVIL = "http://evil.example"

probe = APIRouter()


@probe.get("/t/page")
def page(session: ReadSession) -> dict[str, object]:
    return {"actor": session.actor, "scopes": list(session.scopes), "csrf": session.csrf}


@probe.post("/t/action")
def action(session: AdminAction) -> dict[str, object]:
    return {"done": True, "actor": session.actor}


@dataclass
class Ui:
    """A UI server on loopback, its store and a key of each kind."""

    url: str
    metadata: SqlMetadataStore
    keys: dict[str, str]

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client without redirects followed (the tests look at each redirect)."""
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=10, **kwargs)


def _serve(metadata: SqlMetadataStore, *, auth: bool, host: str = "127.0.0.1") -> BackgroundServer:
    state = UiState(metadata, InMemoryArtifactStore(), "demo", auth=auth, secret=SECRET)
    app = create_app(state)
    app.include_router(probe)
    return BackgroundServer(app, host=host)


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[Ui]:
    metadata = open_metadata_store(f"sqlite:///{tmp_path / 'meta.db'}")
    keys = {
        name: create_key(metadata, name, scopes).token
        for name, scopes in {
            "admin": [ADMIN],
            "reader": [READ],
            "scorer": [PREDICT],
            "leaver": [READ, ADMIN],
        }.items()
    }
    metadata.revoke_api_key("leaver")
    try:
        with _serve(metadata, auth=True) as server:
            yield Ui(server.url, metadata, keys)
    finally:
        metadata.close()


def sign_in(client: httpx.Client, key: str, next_: str = "/t/page") -> httpx.Response:
    return client.post("/signin", data={"key": key, "next": next_})


def signed_in(ui: Ui, client: httpx.Client, name: str) -> str:
    """Sign ``client`` in with ``name``'s key; the session's CSRF token."""
    response = sign_in(client, ui.keys[name])
    assert response.status_code == 303, response.text
    csrf = client.get("/t/page").json()["csrf"]
    assert isinstance(csrf, str)
    return csrf


# --- signing in ------------------------------------------------------------------------------


def test_a_page_without_a_session_sends_to_the_signin_page_and_back(ui: Ui) -> None:
    with ui.client() as client:
        for path, encoded in (
            ("/runs", "%2Fruns"),
            ("/t/page?x=1&y=2", "%2Ft%2Fpage%3Fx%3D1%26y%3D2"),
        ):
            response = client.get(path)
            assert response.status_code == 303
            assert response.headers["location"] == f"/signin?next={encoded}"
        form = client.get("/signin", params={"next": "/t/page?x=1&y=2"})
        assert form.status_code == 200
        assert 'name="next" value="/t/page?x=1&amp;y=2"' in form.text
        done = sign_in(client, ui.keys["reader"], "/t/page?x=1&y=2")
        assert (done.status_code, done.headers["location"]) == (303, "/t/page?x=1&y=2")
        assert client.get("/t/page?x=1&y=2").json()["actor"] == "ui:reader"


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (lambda keys: keys["reader"][:-2] + "zz", "not valid"),
        (lambda keys: "cvk_000000000000_" + "A" * 43, "not valid"),
        (lambda keys: "not a key at all é", "not valid"),
        (lambda keys: "", "Paste an API key"),
        (lambda keys: keys["leaver"], "revoked"),
        (lambda keys: keys["scorer"], "lacks the &#39;read&#39; scope"),
    ],
    ids=["wrong-secret", "unknown-id", "garbage", "empty", "revoked", "predict-only"],
)
def test_a_wrong_revoked_or_predict_only_key_is_refused_and_logged_without_the_key(
    ui: Ui, key: Callable[[dict[str, str]], str], says: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = key(ui.keys)
    caplog.set_level(logging.INFO, logger="conveyor.ui")
    with ui.client() as client:
        response = sign_in(client, token)
        assert response.status_code == 401
        assert says in response.text
        assert COOKIE not in response.headers.get("set-cookie", "")
        assert client.get("/t/page").status_code == 303
    refusals = [r.getMessage() for r in caplog.records if "sign-in refused" in r.getMessage()]
    assert len(refusals) == 1, caplog.text
    if token:
        assert token not in caplog.text
        assert token.split("_")[-1] not in caplog.text  # not even the secret part
    if token == ui.keys["leaver"]:
        assert "(revoked)" in refusals[0]
        assert "key leaver" in refusals[0]


def test_a_read_key_sees_pages_and_the_cookie_is_httponly_samesite_strict(ui: Ui) -> None:
    with ui.client() as client:
        response = sign_in(client, ui.keys["reader"])
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/", "max-age=43200"} <= flags
        assert "secure" not in flags  # plain http on loopback: a Secure cookie would be lost
        assert ui.keys["reader"] not in cookie
        session = client.get("/t/page").json()
        assert session["actor"] == "ui:reader"
        assert session["scopes"] == [READ]
        runs = client.get("/runs")
        assert runs.status_code == 200
        assert "Content-Security-Policy" in runs.headers


def test_behind_https_the_cookie_is_secure(ui: Ui) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (a TLS-terminating proxy on the host)
    with ui.client(headers={"X-Forwarded-Proto": "https"}) as client:
        response = sign_in(client, ui.keys["reader"])
        assert "secure" in response.headers["set-cookie"].lower().split("; ")


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "/\\evil.example", "https://evil.example", "/\t/evil.example",
               "javascript:alert(1)", "evil.example"],
)  # fmt: skip
def test_next_never_leaves_the_server(ui: Ui, target: str) -> None:
    with ui.client() as client:
        response = sign_in(client, ui.keys["reader"], target)
        assert (response.status_code, response.headers["location"]) == (303, "/")
        form = client.get("/signin", params={"next": target})  # signed in: straight on
        assert (form.status_code, form.headers["location"]) == (303, "/")
    with ui.client() as fresh:
        assert 'name="next" value="/"' in fresh.get("/signin", params={"next": target}).text


def test_a_forged_or_foreign_cookie_is_no_session(ui: Ui) -> None:
    from itsdangerous import URLSafeTimedSerializer

    with ui.client() as client:
        sign_in(client, ui.keys["admin"])
        good = client.cookies[COOKIE]
    key_id = next(k.key_id for k in ui.metadata.list_api_keys() if k.name == "admin")
    forged = [
        good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),  # tampered signature
        URLSafeTimedSerializer(b"o" * 32, salt="conveyor-ui-session").dumps([key_id, "c"]),
        "garbage",
    ]
    for value in forged:
        with ui.client(cookies={COOKIE: value}) as client:
            assert client.get("/t/page").status_code == 303, value


def test_revoking_the_key_ends_its_sessions_at_once(ui: Ui) -> None:
    with ui.client() as client:
        csrf = signed_in(ui, client, "admin")
        assert client.post("/t/action", data={"csrf": csrf}).json()["done"] is True
        ui.metadata.revoke_api_key("admin", reason="left the team")
        assert client.get("/t/page").status_code == 303
        after = client.post("/t/action", data={"csrf": csrf})
        assert after.status_code == 303
        assert after.headers["location"].startswith("/signin?next=")


def test_signing_out_drops_the_cookie(ui: Ui) -> None:
    with ui.client() as client:
        signed_in(ui, client, "reader")
        assert client.post("/signout", headers={"Origin": EVIL}).status_code == 403
        assert client.get("/t/page").status_code == 200
        response = client.post("/signout", headers={"Origin": ui.url})
        assert (response.status_code, response.headers["location"]) == (303, "/signin")
        assert re.search(rf"{COOKIE}=(\"\")?;", response.headers["set-cookie"])
        assert client.get("/t/page").status_code == 303


# --- actions ---------------------------------------------------------------------------------


def test_an_admin_action_needs_the_admin_scope(ui: Ui) -> None:
    with ui.client() as client:
        csrf = signed_in(ui, client, "reader")
        response = client.post("/t/action", data={"csrf": csrf}, headers={"Origin": ui.url})
        assert response.status_code == 403
        assert "needs an API key with the &#39;admin&#39; scope" in response.text


def test_an_action_without_or_with_a_wrong_csrf_token_is_refused(ui: Ui) -> None:
    with ui.client() as client:
        csrf = signed_in(ui, client, "admin")
        for form in ({}, {"csrf": ""}, {"csrf": csrf[:-1] + "x"}, {"csrf": "é" * 5}):
            response = client.post("/t/action", data=form)
            assert response.status_code == 403, form
            assert "CSRF token" in response.text
        as_json = client.post("/t/action", json={"csrf": csrf})  # the token only counts in a form
        assert as_json.status_code == 403
        with ui.client() as other:  # another session's token
            other_csrf = signed_in(ui, other, "admin")
            assert other_csrf != csrf
            assert client.post("/t/action", data={"csrf": other_csrf}).status_code == 403
        done = client.post("/t/action", data={"csrf": csrf}, headers={"Origin": ui.url})
        assert done.json() == {"done": True, "actor": "ui:admin"}


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Origin": "https://127.0.0.1"},  # another scheme
        {"Referer": f"{EVIL}/page"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_cross_origin_post_is_refused_even_with_the_token(
    ui: Ui, headers: dict[str, str]
) -> None:
    with ui.client() as client:
        csrf = signed_in(ui, client, "admin")
        response = client.post("/t/action", data={"csrf": csrf}, headers=headers)
        assert response.status_code == 403
        assert "refused" in response.text
    with ui.client() as fresh:  # signing someone in to the attacker's key (login CSRF) too
        login = fresh.post("/signin", data={"key": ui.keys["admin"]}, headers=headers)
        assert login.status_code == 403
        assert COOKIE not in login.headers.get("set-cookie", "")


def test_same_origin_headers_pass(ui: Ui) -> None:
    with ui.client() as client:
        csrf = signed_in(ui, client, "admin")
        for headers in (
            {"Origin": ui.url, "Sec-Fetch-Site": "same-origin"},
            {"Referer": f"{ui.url}/models?x=1"},
        ):
            response = client.post("/t/action", data={"csrf": csrf}, headers=headers)
            assert response.status_code == 200, headers


# --- --no-auth -------------------------------------------------------------------------------


def test_no_auth_answers_only_loopback_names_and_still_checks_csrf(tmp_path: Path) -> None:
    metadata = open_metadata_store(f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        with _serve(metadata, auth=False) as server, httpx.Client(base_url=server.url) as client:
            session = client.get("/t/page").json()
            assert (session["actor"], session["scopes"]) == ("ui:local", [READ, ADMIN])
            for host in ("localhost", f"localhost:{server.port}", "[::1]:1"):
                assert client.get("/t/page", headers={"Host": host}).status_code == 200
            # a site whose DNS name was rebound to 127.0.0.1 sends its own name as Host
            rebound = client.get("/t/page", headers={"Host": f"evil.example:{server.port}"})
            assert rebound.status_code == 403
            assert "--no-auth" in rebound.text
            assert client.post("/t/action", data={"csrf": "x"}).status_code == 403
            done = client.post("/t/action", data={"csrf": session["csrf"]})
            assert done.json() == {"done": True, "actor": "ui:local"}
    finally:
        metadata.close()


def test_no_auth_is_refused_off_loopback_and_a_short_secret_is_refused(tmp_path: Path) -> None:
    from tests.e2e.conftest import conveyor

    for host in ("0.0.0.0", "192.0.2.1", "example.com"):  # refused, never bound
        done = conveyor("ui", "-p", tmp_path, "--no-auth", "--host", host, check=False)
        assert done.returncode == 2, done.stderr
        assert "--no-auth only on a loopback address" in done.stderr
    short = conveyor("ui", "-p", tmp_path, env={"CONVEYOR_UI_SECRET": "short"}, check=False)
    assert short.returncode == 2
    assert "CONVEYOR_UI_SECRET is shorter than 32" in short.stderr
