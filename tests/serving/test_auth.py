"""API keys: every route except /health and /ready refuses a missing, wrong or revoked key."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.routing import Route

from conveyor.errors import MetadataStorageError, NotFoundError
from conveyor.project import Project
from conveyor.serving.app import PUBLIC_ROUTES, create_app
from conveyor.serving.auth import AuthResult, KeyRing, create_key, hash_secret
from tests.serving.conftest import LiveServer, settings_for, visa_records

if TYPE_CHECKING:
    from pathlib import Path


def _routes(routes: list[Any]) -> list[tuple[str, str]]:
    """(method, path) of every route, descending into included routers (no prefixes here)."""
    found = []
    for route in routes:
        if isinstance(route, Route):
            found += [(m, route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
        else:  # FastAPI >= 0.16x wraps include_router() in an object holding the router
            inner = getattr(route, "original_router", None)
            assert inner is not None, f"unknown route type {type(route).__name__}"
            found += _routes(inner.routes)
    return found


def test_every_non_health_route_refuses_missing_wrong_and_revoked_keys(
    live: LiveServer, api_key: str, visa_project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Project.load(visa_project) as proj:
        revoked = create_key(proj.metadata, "leaver").token
        proj.metadata.revoke_api_key("leaver", reason="left the team")
    live.state.keys.refresh()
    wrong = api_key[:-4] + ("AAAA" if not api_key.endswith("AAAA") else "BBBB")
    routes = _routes(live.app.routes)
    assert {p for _, p in routes} >= {
        "/health",
        "/ready",
        "/v1/model",
        "/v1/predict",
        "/v1/predict/file",
        "/metrics",
        "/openapi.json",
        "/docs",
    }
    caplog.set_level(logging.INFO)
    checked = 0
    for method, path in routes:
        url = f"{live.url}{path}"
        if path in PUBLIC_ROUTES:
            assert httpx.request(method, url).status_code == 200
            continue
        cases = [
            ({}, 401),
            ({"X-API-Key": wrong}, 401),
            ({"Authorization": f"Bearer {wrong}"}, 401),
            ({"X-API-Key": "not-even-a-key"}, 401),
            ({"X-API-Key": revoked}, 403),
            ({"Authorization": f"Bearer {revoked}"}, 403),
        ]
        for headers, status in cases:
            response = httpx.request(method, url, headers=headers)
            assert response.status_code == status, (method, path, headers, response.text)
            checked += 1
        for headers in ({"X-API-Key": api_key}, {"Authorization": f"Bearer {api_key}"}):
            assert httpx.request(method, url, headers=headers).status_code not in (401, 403)
    assert checked == 7 * 6
    for secret in (api_key, wrong, revoked):
        assert secret not in caplog.text
        assert secret.split("_", 2)[2] not in caplog.text
    metrics = httpx.get(f"{live.url}/metrics", headers={"X-API-Key": api_key}).text
    assert 'conveyor_auth_failures_total{reason="missing"} 7.0' in metrics
    assert 'conveyor_auth_failures_total{reason="invalid"} 21.0' in metrics
    assert 'conveyor_auth_failures_total{reason="revoked"} 14.0' in metrics


def test_revoking_a_key_takes_effect_on_a_running_server(
    live: LiveServer, visa_project: Path
) -> None:
    with Project.load(visa_project) as proj:
        token = create_key(proj.metadata, "temp").token
    deadline = time.monotonic() + 5
    headers = {"X-API-Key": token}
    body = {"records": visa_records(1)}
    while httpx.post(f"{live.url}/v1/predict", json=body, headers=headers).status_code != 200:
        assert time.monotonic() < deadline, "new key not accepted"
        time.sleep(0.05)
    with Project.load(visa_project) as proj:
        proj.metadata.revoke_api_key("temp")
    deadline = time.monotonic() + 5
    while httpx.post(f"{live.url}/v1/predict", json=body, headers=headers).status_code != 403:
        assert time.monotonic() < deadline, "revoked key still accepted"
        time.sleep(0.05)


def test_no_auth_serves_without_keys(visa_project: Path) -> None:
    with LiveServer(create_app(settings_for(visa_project, auth="none"))) as server:
        response = httpx.post(f"{server.url}/v1/predict", json={"records": visa_records(1)})
    assert response.status_code == 200


def test_public_docs_opens_only_the_docs(visa_project: Path, api_key: str) -> None:
    with LiveServer(create_app(settings_for(visa_project, public_docs=True))) as server:
        assert httpx.get(f"{server.url}/openapi.json").status_code == 200
        assert httpx.get(f"{server.url}/docs").status_code == 200
        assert httpx.get(f"{server.url}/v1/model").status_code == 401


def test_keys_are_stored_only_as_salted_hashes(visa_project: Path) -> None:
    with Project.load(visa_project) as proj:
        a = create_key(proj.metadata, "a")
        b = create_key(proj.metadata, "b")
        rows = {k.name: k for k in proj.metadata.list_api_keys()}
        with pytest.raises(MetadataStorageError, match="exists already"):
            create_key(proj.metadata, "a")
        with pytest.raises(NotFoundError):
            proj.metadata.revoke_api_key("nobody")
        with pytest.raises(ValueError, match="key name"):
            create_key(proj.metadata, "bad name!")
        events = [e.action for e in proj.metadata.list_events()]
    for new in (a, b):
        row = rows[new.record.name]
        secret = new.token.split("_", 2)[2]
        assert secret not in (row.hash, row.salt) and new.token not in row.hash
        assert row.hash == hash_secret(row.salt, secret)
    assert rows["a"].salt != rows["b"].salt
    assert events.count("key.create") == 2


def test_keyring_outcomes() -> None:
    from conveyor.store.metadata import open_metadata_store

    store = open_metadata_store("sqlite://")
    token = create_key(store, "k").token
    ring = KeyRing(store.list_api_keys)
    assert ring.check(token) == (AuthResult.OK, "k")
    assert ring.check(None)[0] is AuthResult.MISSING
    assert ring.check(token + "x")[0] is AuthResult.INVALID
    assert ring.check(token[:-1] + ("a" if token[-1] != "a" else "b"))[0] is AuthResult.INVALID
    store.revoke_api_key("k")
    assert ring.check(token)[0] is AuthResult.OK  # until the next refresh
    ring.refresh()
    assert ring.check(token)[0] is AuthResult.REVOKED
