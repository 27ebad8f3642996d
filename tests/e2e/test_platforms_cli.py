"""``conveyor export model``, ``conveyor serve --bundle`` / ``--platform`` and ``conveyor
container`` as a deployer runs them: real subprocesses, real uvicorn, SIGTERM to stop."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests._processes import die_with_parent
from tests.e2e.conftest import CONVEYOR, cli_env, conveyor
from tests.serving.conftest import MODEL, free_port, in_process_labels, visa_records

pytestmark = pytest.mark.slow

TOKEN = "e2e-" + "k" * 40


@pytest.fixture
def bundle(trained_visa: Path, tmp_path: Path) -> Path:
    import shutil

    project = Path(shutil.copytree(trained_visa, tmp_path / "visa"))
    out = tmp_path / "bundle"
    done = json.loads(
        conveyor("export", "model", f"{MODEL}@production", out, "-p", project, "--json").stdout
    )
    assert done["version"] == 1 and Path(done["archive"]).is_file()
    again = conveyor("export", "model", f"{MODEL}:1", out, "-p", project, check=False)
    assert again.returncode == 1 and "--force" in again.stderr
    return out


def _spawn(*args: str | Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(CONVEYOR), *map(str, args)],
        env={**cli_env(), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_parent,
    )


def _wait(proc: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{url} never answered"
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[str]) -> tuple[float, str]:
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    return time.monotonic() - start, err


def test_serve_bundle_needs_keys_and_answers_like_the_model(bundle: Path) -> None:
    refused = conveyor("serve", "--bundle", bundle, check=False)
    assert refused.returncode == 1 and "CONVEYOR_API_KEYS" in refused.stderr
    port = free_port()
    proc = _spawn(
        "serve", "--bundle", bundle, "--port", str(port), env={"CONVEYOR_API_KEYS": TOKEN}
    )
    url = f"http://127.0.0.1:{port}"
    records = visa_records(30, seed=9)
    try:
        _wait(proc, f"{url}/ready")
        response = httpx.post(
            f"{url}/v1/predict", json={"records": records}, headers={"X-API-Key": TOKEN}
        )
        assert httpx.post(f"{url}/v1/predict", json={"records": records}).status_code == 401
    finally:
        _, err = _stop(proc)
    assert response.status_code == 200
    assert response.json()["predictions"] == in_process_labels(bundle, records)
    assert TOKEN not in err


def test_no_auth_on_a_public_host_warns(bundle: Path) -> None:
    port = free_port("0.0.0.0")
    proc = _spawn(
        "serve", "--bundle", bundle, "--no-auth", "--host", "0.0.0.0", "--port", str(port), env={}
    )
    try:
        _wait(proc, f"http://127.0.0.1:{port}/health")
    finally:
        _, err = _stop(proc)
    assert "authentication is OFF" in err


def test_serve_platform_sagemaker_from_the_archive(bundle: Path) -> None:
    port = free_port()
    archive = bundle.with_name("bundle.tar.gz")
    proc = _spawn(
        "serve",
        "--platform",
        "sagemaker",
        "--bundle",
        archive,
        "--host",
        "127.0.0.1",
        env={"SAGEMAKER_BIND_TO_PORT": str(port)},
    )
    records = visa_records(5)
    try:
        _wait(proc, f"http://127.0.0.1:{port}/ping")
        response = httpx.post(f"http://127.0.0.1:{port}/invocations", json=records)
    finally:
        _stop(proc)
    assert [p["label"] for p in response.json()["predictions"]] == in_process_labels(
        bundle, records
    )


@pytest.mark.parametrize(
    ("env", "probe", "predict", "payload"),
    [
        ({"CONVEYOR_PLATFORM": "bundle"}, "/ready", "/v1/predict", "records"),
        ({"AIP_HEALTH_ROUTE": "/hc", "AIP_PREDICT_ROUTE": "/pr"}, "/hc", "/pr", "instances"),
        ({"AZUREML_MODEL_DIR": "{models}"}, "/", "/score", "data"),
    ],
    ids=["bundle", "vertex", "azureml"],
)
def test_container_stops_on_sigterm_within_10_s_with_its_log_flushed(
    bundle: Path, tmp_path: Path, env: dict[str, str], probe: str, predict: str, payload: str
) -> None:
    port = free_port()
    logs = tmp_path / "predlog"
    models = tmp_path / "azureml-models"
    models.mkdir()
    (models / "visa").symlink_to(bundle, target_is_directory=True)
    env = {k: v.format(models=models) for k, v in env.items()}
    env |= {
        "CONVEYOR_BUNDLE": str(bundle),
        "CONVEYOR_LOG_DIR": str(logs),
        "CONVEYOR_API_KEYS": TOKEN,
        "PORT": str(port),
        "AIP_HTTP_PORT": str(port) if "AIP_PREDICT_ROUTE" in env else "",
        "CONVEYOR_AZUREML_PORT": str(port),
    }
    env = {k: v for k, v in env.items() if v}
    proc = _spawn("container", env=env)
    url = f"http://127.0.0.1:{port}"
    records = visa_records(7)
    try:
        _wait(proc, f"{url}{probe}")
        response = httpx.post(
            f"{url}{predict}", json={payload: records}, headers={"X-API-Key": TOKEN}
        )
        assert response.status_code == 200, response.text
    finally:
        seconds, err = _stop(proc)
    assert seconds < 10, err
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "conveyor container:" in err and "mode (" in err
    frame = pd.concat(pd.read_parquet(f) for f in logs.rglob("*.parquet"))
    assert len(frame) == 7  # flushed at shutdown (the log flushes every 2 s otherwise)


def test_container_registry_mode_serves_the_project(trained_visa: Path, tmp_path: Path) -> None:
    import shutil

    project = Path(shutil.copytree(trained_visa, tmp_path / "app"))
    port = free_port()
    proc = _spawn(
        "container", "--no-auth", env={"CONVEYOR_PROJECT": str(project), "PORT": str(port)}
    )
    try:
        _wait(proc, f"http://127.0.0.1:{port}/ready")
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/predict", json={"records": visa_records(3)}
        )
    finally:
        _, err = _stop(proc)
    assert response.status_code == 200
    assert "registry mode" in err
