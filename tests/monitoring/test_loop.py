"""The closed loop end to end: serve -> normal traffic -> drifted traffic -> monitor (alert)
-> retrain on fresh data -> a decision with its reason, all in the audit log."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conveyor.examples.visa.generate import generate, write_csv
from conveyor.monitoring import triggers
from conveyor.monitoring.monitor import check
from conveyor.project import Project
from conveyor.serving.app import ServeSettings, create_app
from conveyor.serving.auth import create_key
from conveyor.serving.background import BackgroundServer
from conveyor.watch import cycle
from tests.monitoring.test_alerts import Receiver

MODEL = "visa-approval"


def _records(n: int, *, seed: int, drift: bool) -> list[dict[str, Any]]:
    import json

    frame = generate(n_rows=n, seed=seed, drift=drift, dirt=False).drop(columns=["case_status"])
    return list(json.loads(frame.to_json(orient="records")))


def _configure(project: Path, webhook: str) -> None:
    path = project / "conveyor.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["monitoring"] = {
        "alerts": [{"type": "log"}, {"type": "webhook", "url": webhook, "retries": 0}],
        "retrain": {"on_drift": True, "on_new_data": True, "persist": 2, "cooldown_minutes": 60},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _send(url: str, key: str, records: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as client:
        for start in range(0, len(records), 50):
            r = client.post("/v1/predict", json={"records": records[start : start + 50]})
            assert r.status_code == 200, r.text


@pytest.mark.slow
def test_drifted_traffic_is_detected_alerted_and_retrained_with_a_reasoned_decision(
    trained_visa: Path, tmp_path: Path
) -> None:
    project = Path(shutil.copytree(trained_visa, tmp_path / "loop"))
    receiver = Receiver()
    _configure(project, receiver.url)
    try:
        with Project.load(project) as proj:
            key = create_key(proj.metadata, "loop").token
            settings = ServeSettings(
                project=str(project), model=f"{MODEL}@production", log_flush_seconds=0.2
            )
            with BackgroundServer(create_app(settings, proj)) as server:
                _send(server.url, key, _records(400, seed=21, drift=False))
            started = time.time()
            calm = check(proj.metadata, proj.artifacts, f"{MODEL}@production")
            assert calm.drift.drifted_columns == [] and calm.drift.n_current == 400

            with BackgroundServer(create_app(settings, proj)) as server:
                _send(server.url, key, _records(1500, seed=22, drift=True))
            first = cycle(proj)  # drift seen once: alert, no retrain yet (persist: 2)
            assert first.check is not None
            assert {"prevailing_wage", "continent"} <= set(first.check.drift.drifted_columns)
            assert not first.retrained and first.triggers == []
            assert len(receiver.bodies) >= 1
            assert "prevailing_wage" in receiver.bodies[0]["message"]

            # fresh data arrives at the source (the drifted world, decided under new rules the
            # champion never saw), and drift persists: the retrained challenger must win
            write_csv(
                project / "data" / "visa.csv", n_rows=1500, seed=23, drift=True, concept_drift=True
            )
            second = cycle(proj)
            assert second.retrained, second
            assert [t.kind for t in second.triggers] == ["drift", "new_data"]
            decision = second.decision
            assert decision is not None and decision.version == 2
            assert decision.status == "approved" and decision.reason, decision
            alias = proj.metadata.get_alias(MODEL, "production")
            assert alias == 2

            third = cycle(proj)  # now checked against the model that holds the alias
            assert third.check is not None and third.check.model.version == alias
            assert not third.retrained

            # more new data: a trigger fires, but the cooldown holds the next retrain
            write_csv(
                project / "data" / "visa.csv", n_rows=1500, seed=24, drift=True, concept_drift=True
            )
            fourth = cycle(proj)
            # v2 learnt the drifted world: no drift against it, only the new data
            assert [t.kind for t in fourth.triggers] == ["new_data"], decision.reason
            assert not fourth.retrained and fourth.cooldown_left

            events = [e for e in proj.metadata.list_events(since=started)]
        actions = [e.action for e in events]
        assert actions.count("retrain.start") == 1 and actions.count("retrain.done") == 1
        assert "retrain.skipped" in actions
        start = next(e for e in events if e.action == "retrain.start")
        assert start.reason is not None and start.reason.startswith("retrained because drift in")
        assert "prevailing_wage" in start.reason
        done = next(e for e in events if e.action == "retrain.done")
        assert done.reason is not None and f"{MODEL}:2" in done.reason
        assert len([b for b in receiver.bodies if b["kind"] == "column"]) == 1  # deduplicated
    finally:
        receiver.close()


def test_triggers_need_persisting_drift_and_respect_the_cooldown() -> None:
    from conveyor.store.metadata import open_metadata_store

    store = open_metadata_store("sqlite://")

    def checked(columns: list[str]) -> None:
        store.append_event(triggers.CHECK, "m:1", details={"drifted_columns": columns})

    decide = {
        "schedule": None,
        "on_drift": True,
        "on_new_data": False,
        "persist": 2,
        "source_checksum": None,
    }
    checked(["a"])
    assert triggers.decide(store, "m", **decide) == []
    checked(["a", "b"])
    fired = triggers.decide(store, "m", **decide)
    assert [t.reason for t in fired] == ["drift in a for 2 checks in a row"]
    checked(["b"])  # b in the last two checks
    assert [t.reason for t in triggers.decide(store, "m", **decide)] == [
        "drift in b for 2 checks in a row"
    ]
    checked(["c"])  # a different column each time is not persisting drift
    assert triggers.decide(store, "m", **decide) == []
    checked([])
    assert triggers.decide(store, "m", **decide) == []
    assert triggers.cooling_down(store, "m", minutes=10) is None
    store.append_event(triggers.RETRAIN, "m", reason="x")
    # started but never finished (the process was killed): no cooldown, the next cycle retries
    assert triggers.cooling_down(store, "m", minutes=10) is None
    store.append_event(triggers.RETRAIN_DONE, "m", reason="x")
    left = triggers.cooling_down(store, "m", minutes=10)
    assert left is not None and 590 < left <= 600


def test_new_data_and_schedule_triggers() -> None:
    from conveyor.errors import ConfigError
    from conveyor.store.metadata import open_metadata_store

    store = open_metadata_store("sqlite://")
    opts = {"on_drift": False, "on_new_data": True, "persist": 1}
    assert triggers.decide(store, "m", schedule="* * * * *", source_checksum="aaa", **opts) == []
    store.append_event(triggers.CYCLE, "m", details={"source_checksum": "aaa"})
    now = time.time()
    assert triggers.decide(store, "m", schedule=None, source_checksum="aaa", **opts) == []
    fired = triggers.decide(
        store, "m", schedule="* * * * *", source_checksum="bbb", now=now + 120, **opts
    )
    assert [t.kind for t in fired] == ["new_data", "schedule"]
    with pytest.raises(ConfigError, match="not a cron expression"):
        triggers.decide(store, "m", schedule="every day", source_checksum=None, **opts)
