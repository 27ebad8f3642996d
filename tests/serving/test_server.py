"""The server over real HTTP (uvicorn on loopback): routes, predictions, bad input, metrics."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd
import pytest

from conveyor.project import Project
from tests.serving.conftest import MODEL, LiveServer, visa_records

if TYPE_CHECKING:
    from pathlib import Path


def test_health_and_ready_need_no_key(live: LiveServer) -> None:
    assert httpx.get(f"{live.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{live.url}/ready").json()
    assert {k: ready[k] for k in ("status", "model", "version")} == {
        "status": "ready",
        "model": MODEL,
        "version": 1,
    }


def test_model_info_shows_version_signature_and_lineage(
    client: httpx.Client, visa_project: Path
) -> None:
    info = client.get("/v1/model").json()
    with Project.load(visa_project) as proj:
        record = proj.metadata.get_model_version(MODEL, 1)
    assert (info["name"], info["version"], info["serving"]) == (MODEL, 1, f"{MODEL}@production")
    assert info["digest"] == record.digest
    assert info["dataset"] == record.dataset and info["run_id"] == record.run_id
    assert info["metrics"]["f1"] == pytest.approx(record.metrics["f1"])
    assert "continent" in info["signature"]["columns"]
    assert info["signature"]["unused"] == ["case_id"]


def test_predictions_match_the_model_in_process(client: httpx.Client, visa_project: Path) -> None:
    records = visa_records(40, seed=5)
    response = client.post("/v1/predict", json={"records": records})
    assert response.status_code == 200, response.text
    body = response.json()
    with Project.load(visa_project) as proj:
        model = proj.load_model(f"{MODEL}@production")
    frame = pd.DataFrame(records)
    assert body["predictions"] == list(model.predict(frame))
    expected = model.predict_proba(frame)
    for row, probs in zip(expected, body["probabilities"], strict=True):
        assert [probs[c] for c in model.classes_] == pytest.approx(list(row))
    assert body["model"] == {"name": MODEL, "version": 1}
    assert response.headers["X-Request-ID"] == body["request_id"]


def test_the_id_column_the_model_drops_is_optional(client: httpx.Client) -> None:
    record = visa_records(1)[0]
    del record["case_id"]
    assert client.post("/v1/predict", json={"records": [record]}).status_code == 200


def test_client_request_id_is_kept(client: httpx.Client) -> None:
    response = client.post(
        "/v1/predict", json={"records": visa_records(1)}, headers={"X-Request-ID": "abc-123"}
    )
    assert response.json()["request_id"] == "abc-123"


def _record(**changes: Any) -> dict[str, Any]:
    record = visa_records(1, seed=9)[0]
    for key, value in changes.items():
        if value is _DROP:
            del record[key]
        else:
            record[key] = value
    return record


_DROP = object()


@pytest.mark.parametrize(
    ("body", "status", "loc", "says"),
    [
        (
            {"records": [_record(no_of_employees="many")]},
            422,
            ["records", 0, "no_of_employees"],
            "valid integer",
        ),
        (
            {"records": [_record(continent=_DROP)]},
            422,
            ["records", 0, "continent"],
            "field required",
        ),
        (
            {"records": [_record(continent="Atlantis")]},
            422,
            ["records", 0, "continent"],
            "'Africa'",
        ),
        ({"records": [_record(yr_of_estab=1500)]}, 422, ["records", 0, "yr_of_estab"], "1800"),
        (
            {"records": [_record(prevailing_wage=float("nan"))]},
            422,
            ["records", 0, "prevailing_wage"],
            "finite",
        ),
        (
            {"records": [_record(prevailing_wage=float("inf"))]},
            422,
            ["records", 0, "prevailing_wage"],
            "finite",
        ),
        (
            {"records": [_record(no_of_employees=2**60)]},
            422,
            ["records", 0, "no_of_employees"],
            "less than or equal",
        ),
        (
            {"records": [_record(has_job_experience=True)]},
            422,
            ["records", 0, "has_job_experience"],
            "'Y'",
        ),
        ({"records": [_record(colour="red")]}, 422, ["records", 0, "colour"], "unknown field"),
        ({"records": []}, 422, ["records"], "at least 1"),
        ({"rows": []}, 422, ["records"], "field required"),
        ([1, 2], 422, ["body"], "dictionary"),
    ],
    ids=[
        "wrong-type",
        "missing",
        "unknown-category",
        "out-of-range",
        "nan",
        "inf",
        "huge-int",
        "bool-for-category",
        "extra-field",
        "empty",
        "no-records",
        "not-an-object",
    ],
)
def test_bad_records_get_field_level_4xx(
    client: httpx.Client, body: Any, status: int, loc: list[Any], says: str
) -> None:
    # allow_nan: Python's json writes NaN/Infinity, which the server must refuse per field
    response = client.post(
        "/v1/predict",
        content=json.dumps(body, allow_nan=True),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    field = next(f for f in error["fields"] if f["loc"] == loc)
    assert says in field["msg"]
    assert "Traceback" not in response.text and "/" not in error["message"].split("(got")[0]


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b'{"records": [', {"content-type": "application/json"}, 400, "malformed_json"),
        (b"\xff\xfe", {"content-type": "application/json"}, 400, "malformed_json"),
        (
            b"a=1",
            {"content-type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        (b"{}" + b" " * (9 << 20), {"content-type": "application/json"}, 413, "too_large"),
    ],
    ids=["truncated-json", "not-utf8", "form-body", "oversized"],
)
def test_malformed_bodies_get_4xx(
    client: httpx.Client, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    response = client.post("/v1/predict", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_too_many_records_are_refused(visa_project: Path, api_key: str) -> None:
    from conveyor.serving.app import create_app
    from tests.serving.conftest import settings_for

    with LiveServer(create_app(settings_for(visa_project, max_records=5))) as server:
        response = httpx.post(
            f"{server.url}/v1/predict",
            json={"records": visa_records(6)},
            headers={"X-API-Key": api_key},
        )
    assert response.status_code == 422
    assert "at most 5" in response.json()["error"]["fields"][0]["msg"]


def test_unknown_category_policy_passes_it_to_the_model(visa_project: Path, api_key: str) -> None:
    from conveyor.serving.app import create_app
    from tests.serving.conftest import settings_for

    app = create_app(settings_for(visa_project, unknown_categories="unknown"))
    with LiveServer(app) as server:
        response = httpx.post(
            f"{server.url}/v1/predict",
            json={"records": [_record(continent="Antarctica")]},
            headers={"X-API-Key": api_key},
        )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0] in ("Certified", "Denied")


def test_file_scoring_csv_and_parquet(client: httpx.Client, visa_project: Path) -> None:
    frame = pd.DataFrame(visa_records(300, seed=3))
    frame["case_status"] = "?"  # extra columns pass through
    csv = frame.to_csv(index=False).encode()
    response = client.post("/v1/predict/file", files={"file": ("batch.csv", csv, "text/csv")})
    assert response.status_code == 200, response.text
    scored = pd.read_csv(io.BytesIO(response.content))
    assert len(scored) == 300
    assert list(scored.columns[: len(frame.columns)]) == list(frame.columns)
    assert set(scored["model_version"]) == {1}
    with Project.load(visa_project) as proj:
        model = proj.load_model(f"{MODEL}:1")
    assert list(scored["prediction"]) == list(model.predict(frame.drop(columns="case_status")))

    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    response = client.post(
        "/v1/predict/file",
        files={"file": ("batch.parquet", buffer.getvalue())},
        params={"format": "csv"},
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert len(pd.read_csv(io.BytesIO(response.content))) == 300


def test_file_with_bad_rows_is_refused_naming_row_and_column(client: httpx.Client) -> None:
    frame = pd.DataFrame(visa_records(20, seed=4))
    frame.loc[6, "continent"] = "Atlantis"
    files = {"file": ("applicants.csv", frame.to_csv(index=False).encode(), "text/csv")}
    response = client.post("/v1/predict/file", files=files)
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "applicants.csv" in message and "continent" in message and "rows 7" in message


@pytest.mark.parametrize(
    ("name", "content", "status"),
    [
        ("empty.csv", b"", 400),
        ("binary.csv", b"\x00\x01\x02PK\x03\x04" * 50, 422),
        ("notes.xlsx", b"a,b\n1,2\n", 415),
    ],
    ids=["empty", "binary", "unsupported-extension"],
)
def test_unreadable_files_get_4xx(
    client: httpx.Client, name: str, content: bytes, status: int
) -> None:
    response = client.post("/v1/predict/file", files={"file": (name, content)})
    assert response.status_code == status, response.text


def test_metrics_count_requests_stages_and_classes(client: httpx.Client) -> None:
    client.post("/v1/predict", json={"records": visa_records(3)})
    client.post("/v1/predict", json={"records": []})
    text = client.get("/metrics").text
    assert 'conveyor_requests_total{route="/v1/predict",status="200"} 1.0' in text
    assert 'conveyor_requests_total{route="/v1/predict",status="422"} 1.0' in text
    for stage in ("parse", "validate", "predict", "serialise"):
        assert f'conveyor_stage_seconds_count{{stage="{stage}"}}' in text
    counted = [line for line in text.splitlines() if line.startswith("conveyor_predictions_total")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in counted) == 3
    assert 'conveyor_model_version{model="visa-approval"} 1.0' in text
