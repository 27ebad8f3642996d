"""Hot swap under load (promote and rollback while clients send requests: none may fail), and
the prediction log (batched Parquet partitions, indexed, flushed on shutdown)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import httpx
import pandas as pd
import pytest

from conveyor.monitoring.current import MODEL_VERSION, PREDICTION, REQUEST_ID, read_log
from conveyor.project import Project
from conveyor.registry import governance
from conveyor.serving.app import create_app
from tests.serving.conftest import MODEL, LiveServer, settings_for, visa_records

if TYPE_CHECKING:
    from pathlib import Path

SWAP_DEADLINE_S = 5.0


def _second_version(project: Path) -> int:
    """Register version 2 of the model (the same artifact and signature as version 1)."""
    with Project.load(project) as proj:
        v1 = proj.metadata.get_model_version(MODEL, 1)
        v2 = proj.metadata.register_model_version(
            MODEL,
            digest=v1.digest,
            run_id=v1.run_id,
            dataset=v1.dataset,
            metrics=v1.metrics,
            signature=v1.signature,
            status="approved",
        )
    return v2.version


def _move(project: Path, *, to: int | None = None, rollback: bool = False) -> None:
    with Project.load(project) as proj:
        if rollback:
            governance.rollback(proj.metadata, MODEL, alias="production", reason="test rollback")
        else:
            assert to is not None
            governance.promote(proj.metadata, MODEL, to, alias="production", reason="test swap")


@pytest.mark.slow
def test_promote_and_rollback_under_load_fail_no_request(visa_project: Path, api_key: str) -> None:
    v2 = _second_version(visa_project)
    records = visa_records(3)
    seen: list[tuple[float, int]] = []
    failures: list[str] = []
    stop = threading.Event()

    def client(url: str) -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": api_key}, timeout=30) as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/predict", json={"records": records})
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    seen.append((time.monotonic(), r.json()["model"]["version"]))

    def wait_for(version: int, since: float) -> float:
        deadline = since + SWAP_DEADLINE_S
        while time.monotonic() < deadline:
            if any(t > since and v == version for t, v in seen[-20:]):
                return time.monotonic() - since
            time.sleep(0.02)
        pytest.fail(f"server still not on version {version} after {SWAP_DEADLINE_S} s")

    app = create_app(settings_for(visa_project, poll_seconds=1.0))
    with LiveServer(app) as server:
        threads = [threading.Thread(target=client, args=(server.url,)) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            moved = time.monotonic()
            _move(visa_project, to=v2)
            to_v2 = wait_for(v2, moved)
            info = httpx.get(f"{server.url}/v1/model", headers={"X-API-Key": api_key}).json()
            assert info["version"] == v2
            moved = time.monotonic()
            _move(visa_project, rollback=True)
            to_v1 = wait_for(1, moved)
            time.sleep(0.3)
            metrics = httpx.get(f"{server.url}/metrics", headers={"X-API-Key": api_key}).text
        finally:
            stop.set()
            for t in threads:
                t.join()
    print(f"hot swap: {len(seen)} requests, swap to v2 {to_v2:.2f} s, rollback {to_v1:.2f} s")
    assert failures == []
    assert to_v2 < SWAP_DEADLINE_S and to_v1 < SWAP_DEADLINE_S
    assert len(seen) > 50
    assert "conveyor_model_swaps_total 2.0" in metrics


def test_prediction_log_is_written_in_batches_and_flushed_on_shutdown(
    visa_project: Path, api_key: str
) -> None:
    settings = settings_for(visa_project, log_flush_seconds=60.0, log_flush_rows=50)
    ids = []
    with LiveServer(create_app(settings)) as server:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": api_key}) as c:
            for i in range(12):  # 12 x 5 rows: one partition at 50 rows, the rest at shutdown
                r = c.post("/v1/predict", json={"records": visa_records(5, seed=i)})
                ids.append(r.json()["request_id"])
            deadline = time.monotonic() + 5
            with Project.load(visa_project) as proj:
                while not proj.metadata.list_prediction_logs(MODEL):
                    assert time.monotonic() < deadline, "no partition after 50 rows"
                    time.sleep(0.05)
    with Project.load(visa_project) as proj:
        parts = proj.metadata.list_prediction_logs(MODEL)
        logged = read_log(proj.metadata, proj.artifacts, MODEL)
    assert len(parts) >= 2 and sum(p.n_rows for p in parts) == 60
    assert len(logged) == 60
    assert set(logged[REQUEST_ID]) == set(ids)
    assert set(logged[MODEL_VERSION]) == {1}
    sent = pd.DataFrame([r for i in range(12) for r in visa_records(5, seed=i)])
    pd.testing.assert_series_equal(
        logged["prevailing_wage"], sent["prevailing_wage"], check_names=False
    )
    assert {"proba_Certified", "proba_Denied", PREDICTION, "predicted_at"} <= set(logged.columns)
    assert logged["continent"].dtype == sent["continent"].dtype  # the training schema's dtypes
