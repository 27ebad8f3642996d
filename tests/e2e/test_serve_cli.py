"""``conveyor keys``, ``conveyor serve`` and ``conveyor predict`` as a user runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from conveyor.examples.visa.generate import generate
from conveyor.project import Project
from tests.e2e.conftest import conveyor, spawn_conveyor
from tests.serving.conftest import MODEL, free_port, visa_records

pytestmark = pytest.mark.slow


@pytest.fixture
def served(trained_visa: Path, tmp_path: Path) -> Path:
    """A private copy of the trained visa project."""
    import shutil

    return Path(shutil.copytree(trained_visa, tmp_path / "served"))


def _inputs(n: int, seed: int = 1) -> pd.DataFrame:
    return generate(n_rows=n, seed=seed, dirt=False).drop(columns=["case_status"])


def test_keys_create_list_revoke(served: Path) -> None:
    created = json.loads(conveyor("keys", "create", "--name", "ci", "--json", "-p", served).stdout)
    assert created["key"].startswith("cvk_") and created["name"] == "ci"
    listed = json.loads(conveyor("keys", "list", "--json", "-p", served).stdout)
    assert [(k["name"], k["status"]) for k in listed] == [("ci", "active")]
    assert created["key"] not in conveyor("keys", "list", "-p", served).stdout
    conveyor("keys", "revoke", "ci", "--reason", "rotated", "-p", served)
    listed = json.loads(conveyor("keys", "list", "--json", "-p", served).stdout)
    assert listed[0]["status"] == "revoked"
    again = conveyor("keys", "create", "--name", "ci", "-p", served, check=False)
    assert again.returncode == 1 and "exists already" in again.stderr


def test_serve_answers_over_http_and_flushes_its_log_on_sigterm(served: Path) -> None:
    key = json.loads(conveyor("keys", "create", "--name", "e2e", "--json", "-p", served).stdout)
    port = free_port()
    proc = spawn_conveyor(
        "serve",
        "-p",
        served,
        "--port",
        str(port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {key['key']}"}
        response = httpx.post(
            f"{url}/v1/predict", json={"records": visa_records(7)}, headers=headers
        )
        assert response.status_code == 200
        assert len(response.json()["predictions"]) == 7
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells how it ended
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
    assert "serving visa-approval:1" in err
    with Project.load(served) as proj:
        logs = proj.metadata.list_prediction_logs(MODEL)
    assert sum(p.n_rows for p in logs) == 7  # flushed at shutdown (the log flushes every 2 s)


def test_serve_refuses_an_unknown_model_clearly(served: Path) -> None:
    done = conveyor("serve", "--model", "nope@production", "-p", served, check=False)
    assert done.returncode == 1 and "nope" in done.stderr and "Traceback" not in done.stderr


def test_predict_scores_in_chunks_with_the_version_on_every_row(
    served: Path, tmp_path: Path
) -> None:
    frame = _inputs(2500)
    frame.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out" / "scored.csv"
    summary = json.loads(
        conveyor(
            "predict",
            "-m",
            f"{MODEL}@production",
            "-i",
            tmp_path / "in.parquet",
            "-o",
            out,
            "--chunk-rows",
            "1000",
            "--json",
            "-p",
            served,
        ).stdout
    )
    assert summary["rows"] == 2500 and summary["version"] == 1
    scored = pd.read_csv(out)
    assert len(scored) == 2500 and set(scored["model_version"]) == {1}
    with Project.load(served) as proj:
        model = proj.load_model(f"{MODEL}:1")
    assert list(scored["prediction"]) == list(model.predict(frame))
    assert list(scored["case_id"]) == list(frame["case_id"])


def test_predict_names_the_bad_row_of_a_later_chunk_and_writes_nothing(
    served: Path, tmp_path: Path
) -> None:
    frame = _inputs(3000)
    frame.loc[2499, "yr_of_estab"] = 1200
    frame.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "scored.parquet"
    done = conveyor(
        "predict",
        "-i",
        tmp_path / "in.csv",
        "-o",
        out,
        "--chunk-rows",
        "1000",
        "-p",
        served,
        check=False,
    )
    assert done.returncode == 1
    assert "yr_of_estab" in done.stderr and "rows 2500" in done.stderr
    assert not out.exists() and not list(tmp_path.glob(".*part"))


def test_predict_missing_input_is_a_clear_error(served: Path, tmp_path: Path) -> None:
    done = conveyor(
        "predict",
        "-i",
        tmp_path / "nope.csv",
        "-o",
        tmp_path / "o.csv",
        "-p",
        served,
        check=False,
    )
    assert done.returncode == 1 and "nope.csv" in done.stderr and "not found" in done.stderr
    assert not (tmp_path / "o.csv").exists()
