"""Stateful adversarial sequences against one live server: Hypothesis interleaves good and bad
requests with key creation, revocation, promotion, rollback and the promotion of a version the
server cannot serve, and after every step checks what must always hold:

- no request is ever answered 5xx;
- a revoked key is refused and a new key accepted within one key refresh (plus slack);
- the served version follows the alias within a few polls, except a version that cannot be
  served, which is refused with its reason while the last good one keeps answering;
- ``/ready`` stays 200.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from conveyor.project import Project
from conveyor.registry import governance
from conveyor.serving.app import create_app
from conveyor.serving.auth import create_key
from tests.serving.conftest import MODEL, LiveServer, settings_for, visa_records

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

POLL_S = 0.1
_SERIAL = itertools.count(1)  # key names, unique across examples
SETTLE_S = 3.0  # generous: the machine may be busy
BAD_BODIES: list[tuple[str, bytes]] = [
    ("application/json", b"{"),
    ("application/json", b'{"records": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("application/json", b'{"records": [{"no_of_employees": ' + b"9" * 5000 + b"}]}"),
    ("application/json", b'{"records": []}'),
    ("application/json", b'{"records": [{"continent": null}]}'),
    ("application/json", b'{"' + b'a": 1, "'.join(b"k%d" % i for i in range(20_000)) + b'": 1}'),
    ("text/plain", b"hello"),
    ("application/json", b"\xff\xfe"),
]


def _eventually(check: Any, what: str) -> None:
    deadline = time.monotonic() + SETTLE_S
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


class ServerUnderAttack(RuleBasedStateMachine):
    """One server for the whole run; the model holds the project's registry state too."""

    server: LiveServer
    project: Path
    good: list[int]  # versions that can be served
    broken: int  # a version that cannot

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, str] = {}  # name -> token (active)
        self.revoked: dict[str, str] = {}
        self.expected_version = self._served()  # one server for all examples: carry on
        self.refused = self.server.state.watcher.last_error is not None
        self.http = httpx.Client(base_url=self.server.url, timeout=30)
        self.create_key()

    def teardown(self) -> None:
        self.http.close()

    # -- helpers ---------------------------------------------------------------------------

    def _served(self) -> int:
        return int(self.server.state.watcher.current.record.version)

    def _new_key(self) -> str:
        name = f"k{next(_SERIAL)}"
        with Project.load(self.project) as proj:
            self.keys[name] = create_key(proj.metadata, name).token
        return name

    def _predict(self, token: str, body: Any) -> httpx.Response:
        return self.http.post("/v1/predict", json=body, headers={"X-API-Key": token})

    def _any_token(self) -> str:
        return next(iter(self.keys.values()))

    # -- rules -----------------------------------------------------------------------------

    @rule(n=st.integers(1, 5))
    def predict_valid(self, n: int) -> None:
        response = self._predict(self._any_token(), {"records": visa_records(n, seed=n)})
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == n

    @rule(index=st.integers(0, len(BAD_BODIES) - 1))
    def predict_garbage(self, index: int) -> None:
        content_type, body = BAD_BODIES[index]
        response = self.http.post(
            "/v1/predict",
            content=body,
            headers={"X-API-Key": self._any_token(), "Content-Type": content_type},
        )
        assert 400 <= response.status_code < 500, (index, response.status_code, response.text)

    @rule(token=st.sampled_from(["", "cvk_000000000000_" + "a" * 43, "Bearer", "cvk_abc"]))
    def predict_with_a_bad_key(self, token: str) -> None:
        response = self.http.post(
            "/v1/predict", json={"records": visa_records(1)}, headers={"X-API-Key": token}
        )
        assert response.status_code == 401, response.text

    @rule()
    def create_key(self) -> None:
        """A new key is accepted within a key refresh."""
        name = self._new_key()
        token = self.keys[name]
        _eventually(
            lambda: self._predict(token, {"records": visa_records(1)}).status_code == 200,
            f"new key {name} accepted",
        )

    @rule()
    def revoke_key(self) -> None:
        if len(self.keys) < 2:
            self._new_key()
        name, token = next(iter(self.keys.items()))
        del self.keys[name]
        with Project.load(self.project) as proj:
            proj.metadata.revoke_api_key(name, reason="stateful test")
        self.revoked[name] = token
        _eventually(
            lambda: self._predict(token, {"records": visa_records(1)}).status_code == 403,
            f"revoked key {name} refused",
        )

    @rule(index=st.integers(0, 1))
    def promote_good(self, index: int) -> None:
        version = self.good[index]
        with Project.load(self.project) as proj:
            governance.promote(proj.metadata, MODEL, version, alias="production", reason="t")
        self.expected_version, self.refused = version, False
        watcher = self.server.state.watcher
        _eventually(
            lambda: self._served() == version and watcher.last_error is None,
            f"v{version} served, nothing refused",
        )

    @rule()
    def promote_unservable(self) -> None:
        with Project.load(self.project) as proj:
            governance.promote(proj.metadata, MODEL, self.broken, alias="production", reason="t")
        self.refused = True
        _eventually(
            lambda: (
                f"version {self.broken}, not served" in (self.server.state.watcher.last_error or "")
            ),
            "the unservable version refused",
        )

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def serves_the_last_good_version(self) -> None:
        assert self._served() == self.expected_version

    @invariant()
    def ready(self) -> None:
        response = self.http.get("/ready")
        assert response.status_code == 200, response.text
        assert (response.json()["swap_error"] is not None) == self.refused

    @invariant()
    def revoked_keys_stay_revoked(self) -> None:
        for token in list(self.revoked.values())[-2:]:
            assert self._predict(token, {"records": visa_records(1)}).status_code == 403


def test_interleaved_attacks_swaps_and_key_changes_keep_the_server_correct(
    visa_project: Path,
) -> None:
    with Project.load(visa_project) as proj:
        v1 = proj.metadata.get_model_version(MODEL, 1)
        v2 = proj.metadata.register_model_version(
            MODEL, digest=v1.digest, run_id=v1.run_id, signature=v1.signature, status="approved"
        )
        broken = proj.metadata.register_model_version(
            MODEL,
            digest=v1.digest,
            run_id=v1.run_id,
            signature={"columns": [1, 2, 3]},
            status="approved",
        )
    app = create_app(settings_for(visa_project, poll_seconds=POLL_S, log_flush_seconds=0.5))
    with LiveServer(app) as server:
        ServerUnderAttack.server = server
        ServerUnderAttack.project = visa_project
        ServerUnderAttack.good = [1, v2.version]
        ServerUnderAttack.broken = broken.version
        run_state_machine_as_test(
            ServerUnderAttack,
            settings=settings(
                max_examples=5,
                stateful_step_count=20,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
        errors = [
            line
            for line in httpx.get(
                f"{server.url}/metrics",
                headers={"X-API-Key": _a_key(visa_project)},
            ).text.splitlines()
            if line.startswith("conveyor_requests_total") and 'status="5' in line
        ]
    assert errors == []


def _a_key(project: Path) -> str:
    with Project.load(project) as proj:
        return create_key(proj.metadata, "metrics-reader").token
