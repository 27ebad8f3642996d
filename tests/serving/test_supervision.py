"""Background work that cannot be wedged (hardening finding 1): a version the server cannot load
is refused with its reason while the old one keeps serving, and API-key refresh runs on its own
supervised thread, so revocations stay effective whatever happens to alias following."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conveyor.project import Project
from conveyor.registry import governance
from conveyor.serving.app import create_app
from conveyor.serving.auth import create_key
from conveyor.serving.supervisor import Supervised
from tests.serving.conftest import MODEL, LiveServer, settings_for, visa_records

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

SWAP_DEADLINE_S = 5.0
REVOKE_DEADLINE_S = 2.0


def _wait(what: str, done: Callable[[], bool], deadline_s: float) -> float:
    """Seconds until ``done()`` holds (fails the test after ``deadline_s``)."""
    start = time.monotonic()
    while not done():
        assert time.monotonic() - start < deadline_s, f"{what} within {deadline_s} s"
        time.sleep(0.05)
    return time.monotonic() - start


def _register_broken(project: Path, signature: dict[str, Any]) -> int:
    """Version 2: the same model bytes as version 1 with a signature it cannot be served by."""
    with Project.load(project) as proj:
        v1 = proj.metadata.get_model_version(MODEL, 1)
        v2 = proj.metadata.register_model_version(
            MODEL, digest=v1.digest, run_id=v1.run_id, signature=signature, status="approved"
        )
        governance.promote(proj.metadata, MODEL, v2.version, alias="production", reason="test")
    return v2.version


BROKEN = {
    # ConfigError (a ConveyorError): the watcher caught these before too.
    "no signature": {"task": "classification"},
    # Anything else, e.g. a contract that cannot be built, ended the watcher thread before.
    "malformed signature": {"columns": {"age": "not a column spec"}},
    "unbuildable contract": {"columns": [1, 2, 3]},
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_version_that_cannot_be_served_is_refused_and_keys_keep_refreshing(
    visa_project: Path, api_key: str, case: str
) -> None:
    body = {"records": visa_records(2)}
    with LiveServer(create_app(settings_for(visa_project))) as server:
        client = httpx.Client(base_url=server.url, headers={"X-API-Key": api_key}, timeout=30)
        version = _register_broken(visa_project, BROKEN[case])
        _wait("the move is noticed", lambda: client.get("/v1/model").json()["swap_error"], 5)

        info = client.get("/v1/model").json()
        assert info["version"] == 1 and f"version {version}, not served" in info["swap_error"]
        ready = httpx.get(f"{server.url}/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["version"] == 1 and ready.json()["swap_error"] == info["swap_error"]
        assert ready.json()["tasks"]["model-watcher"]["ok"] is True  # a refusal is handled
        answer = client.post("/v1/predict", json=body)
        assert answer.status_code == 200 and answer.json()["model"]["version"] == 1

        # Revocations and new keys still take effect: key refresh never stopped.
        with Project.load(visa_project) as proj:
            fresh = create_key(proj.metadata, "after-refusal").token
            proj.metadata.revoke_api_key("tests")
        _wait(
            "the revoked key is refused",
            lambda: client.post("/v1/predict", json=body).status_code == 403,
            REVOKE_DEADLINE_S,
        )
        _wait(
            "the new key is accepted",
            lambda: (
                httpx.post(
                    f"{server.url}/v1/predict", json=body, headers={"X-API-Key": fresh}
                ).status_code
                == 200
            ),
            REVOKE_DEADLINE_S,
        )
        metrics = httpx.get(f"{server.url}/metrics", headers={"X-API-Key": fresh}).text
        assert "conveyor_model_refused_total 1.0" in metrics
        assert 'conveyor_background_healthy{task="key-refresh"} 1.0' in metrics
        client.close()
    with Project.load(visa_project) as proj:
        alerts = proj.metadata.list_events(action="alert.sent")
    assert [e.details["key"] for e in alerts] == [f"serving-refused:{MODEL}:{version}"]


def test_moving_back_to_the_served_version_clears_the_refusal(
    visa_project: Path, api_key: str
) -> None:
    with LiveServer(create_app(settings_for(visa_project))) as server:
        client = httpx.Client(base_url=server.url, headers={"X-API-Key": api_key}, timeout=30)
        _register_broken(visa_project, BROKEN["unbuildable contract"])
        _wait("the refusal", lambda: client.get("/v1/model").json()["swap_error"], 5)
        with Project.load(visa_project) as proj:
            governance.rollback(proj.metadata, MODEL, alias="production", reason="back")
        _wait("the refusal clears", lambda: not client.get("/v1/model").json()["swap_error"], 5)
        client.close()


def test_key_refresh_that_keeps_failing_makes_ready_503_then_recovers(
    visa_project: Path, api_key: str
) -> None:
    with LiveServer(create_app(settings_for(visa_project, poll_seconds=0.05))) as server:
        keys = server.state.keys
        working = keys._load

        def unreachable() -> Any:
            raise RuntimeError("metadata store unreachable")

        keys._load = unreachable
        _wait("/ready fails", lambda: httpx.get(f"{server.url}/ready").status_code == 503, 5)
        ready = httpx.get(f"{server.url}/ready").json()
        assert ready["status"] == "failing"
        task = ready["tasks"]["key-refresh"]
        assert task["stale"] and not task["ok"] and task["failures"] >= 2
        assert task["error"] == "RuntimeError: metadata store unreachable"
        keys._load = working
        _wait("/ready recovers", lambda: httpx.get(f"{server.url}/ready").status_code == 200, 5)
        answer = httpx.post(
            f"{server.url}/v1/predict",
            json={"records": visa_records(1)},
            headers={"X-API-Key": api_key},
        )
        assert answer.status_code == 200


def test_supervised_task_survives_any_exception_and_logs_each_error_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[BaseException | None] = [
        RuntimeError("boom"),
        RuntimeError("boom"),
        KeyError("x"),
        None,
    ]
    failures: list[BaseException] = []

    def tick() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    task = Supervised("t", tick, interval=0.01, stale_after=60, on_failure=failures.append)
    with caplog.at_level(logging.INFO, logger="conveyor.serving"):
        results = [task.run_once() for _ in range(4)]
    assert results == [False, False, False, True]
    assert [str(f) for f in failures] == ["boom", "boom", "'x'"]
    status = task.status()
    assert (status.ok, status.runs, status.failures, status.stale) == (True, 4, 3, False)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["t failed: RuntimeError: boom", "t failed: KeyError: 'x'"]
    assert any(r.getMessage() == "t: recovered" for r in caplog.records)


def test_supervised_task_runs_on_its_thread_until_stopped() -> None:
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(time.monotonic())
        if len(ticks) % 2:
            raise ValueError("every other tick fails")

    task = Supervised("t", tick, interval=0.01)
    task.start()
    _wait("ten ticks", lambda: len(ticks) >= 10, 5)
    task.stop()
    stopped = len(ticks)
    time.sleep(0.05)
    assert len(ticks) == stopped
    assert task.status().failures >= 5
