"""``conveyor serve --bundle``: the same server with no metadata store, keys from the
environment, and the prediction log in a folder."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from conveyor.errors import ConfigError
from conveyor.serving.app import ServeSettings, create_app, create_bundle_app
from tests.serving.conftest import MODEL, LiveServer, in_process_labels, visa_records

TOKEN = "t0k3n-" + "x" * 30


def _settings(bundle: Path, **overrides: Any) -> ServeSettings:
    return ServeSettings(bundle=str(bundle), log_flush_seconds=0.2, **overrides)


def test_bundle_answers_equal_the_model_in_process(visa_bundle: Path) -> None:
    records = visa_records(40, seed=3)
    app = create_bundle_app(_settings(visa_bundle), env={"CONVEYOR_API_KEYS": TOKEN})
    with LiveServer(app) as server:
        response = httpx.post(
            f"{server.url}/v1/predict",
            json={"records": records},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        info = httpx.get(f"{server.url}/v1/model", headers={"X-API-Key": TOKEN}).json()
        ready = httpx.get(f"{server.url}/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": MODEL, "version": 1}
    assert body["predictions"] == in_process_labels(visa_bundle, records)
    assert info["name"] == MODEL and info["version"] == 1 and info["serving"] == f"{MODEL}:1"
    assert ready.status_code == 200


def test_a_tarball_serves_too_and_invalid_input_is_a_precise_422(visa_bundle: Path) -> None:
    archive = visa_bundle.with_name(visa_bundle.name + ".tar.gz")
    app = create_bundle_app(_settings(archive, auth="none"), env={})
    record = visa_records(1)[0] | {"continent": "Atlantis"}
    with LiveServer(app) as server:
        response = httpx.post(f"{server.url}/v1/predict", json={"records": [record]})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["loc"] == ["records", 0, "continent"]


def test_keys_are_required_and_checked(visa_bundle: Path) -> None:
    with pytest.raises(ConfigError, match="CONVEYOR_API_KEYS"):
        create_bundle_app(_settings(visa_bundle), env={})
    with pytest.raises(ConfigError, match="entry 1 is shorter"):
        create_bundle_app(_settings(visa_bundle), env={"CONVEYOR_API_KEYS": "short"})
    digest = "sha256:" + hashlib.sha256(TOKEN.encode()).hexdigest()
    app = create_bundle_app(_settings(visa_bundle), env={"CONVEYOR_API_KEYS": f" {digest} ,"})
    body = {"records": visa_records(2)}
    with LiveServer(app) as server:
        missing = httpx.post(f"{server.url}/v1/predict", json=body)
        wrong = httpx.post(f"{server.url}/v1/predict", json=body, headers={"X-API-Key": "x" * 40})
        right = httpx.post(f"{server.url}/v1/predict", json=body, headers={"X-API-Key": TOKEN})
        health = httpx.get(f"{server.url}/health")
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert health.status_code == 200


def test_create_app_dispatches_on_the_bundle_setting(
    visa_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_API_KEYS", TOKEN)
    app = create_app(_settings(visa_bundle))  # what a worker process builds from the env
    assert app.state.conveyor.watcher.current.ref == f"{MODEL}:1"


def test_the_prediction_log_goes_to_a_folder(visa_bundle: Path, tmp_path: Path) -> None:
    logs = tmp_path / "log"
    app = create_bundle_app(_settings(visa_bundle, auth="none", log_dir=str(logs)), env={})
    with LiveServer(app) as server:
        for seed in range(3):
            response = httpx.post(
                f"{server.url}/v1/predict", json={"records": visa_records(5, seed=seed)}
            )
            assert response.status_code == 200
        time.sleep(0.05)
    files = sorted(logs.glob(f"{MODEL}/v1/*.parquet"))  # flushed at shutdown at the latest
    assert files and not list(logs.rglob("*.tmp"))
    frame = pd.concat([pd.read_parquet(f) for f in files])
    assert len(frame) == 15 and set(frame["model_version"]) == {1}
    assert {"prediction", "request_id", "predicted_at"} <= set(frame.columns)


def test_no_log_dir_means_no_log(visa_bundle: Path) -> None:
    app = create_bundle_app(_settings(visa_bundle, auth="none"), env={})
    with LiveServer(app) as server:
        httpx.post(f"{server.url}/v1/predict", json={"records": visa_records(1)})
        assert server.state.predlog is None
