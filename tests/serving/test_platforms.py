"""Platform modes, probed as SageMaker, Vertex AI and Azure ML send requests (a real uvicorn
server on loopback serving the visa bundle)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conveyor.serving.app import ServeSettings, create_bundle_app
from conveyor.serving.platforms import platform_spec
from tests._bundle import signature_columns
from tests.serving.conftest import MODEL, LiveServer, in_process_labels, visa_records

if TYPE_CHECKING:
    from collections.abc import Iterator


def _server(bundle: Path, platform: str, env: dict[str, str] | None = None) -> LiveServer:
    settings = ServeSettings(bundle=str(bundle), platform=platform)  # type: ignore[arg-type]
    return LiveServer(create_bundle_app(settings, env=env or {}))


@pytest.fixture
def sagemaker(visa_bundle: Path) -> Iterator[str]:
    with _server(visa_bundle, "sagemaker") as server:
        yield server.url


def _csv(records: list[dict[str, Any]], columns: list[str], *, header: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for record in records:
        writer.writerow(["" if record.get(c) is None else record.get(c) for c in columns])
    return out.getvalue().encode()


def test_sagemaker_ping_and_execution_parameters(sagemaker: str) -> None:
    assert httpx.get(f"{sagemaker}/ping").status_code == 200
    params = httpx.get(f"{sagemaker}/execution-parameters").json()
    assert params == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


@pytest.mark.parametrize("header", [False, True])
def test_sagemaker_csv_lines_answer_row_for_row(
    sagemaker: str, visa_bundle: Path, header: bool
) -> None:
    records = visa_records(25, seed=7)
    body = _csv(records, signature_columns(visa_bundle), header=header)
    response = httpx.post(
        f"{sagemaker}/invocations",
        content=body,
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(response.text)))
    assert [line[0] for line in lines] == in_process_labels(visa_bundle, records)
    assert all(len(line) == 3 and abs(float(line[1]) + float(line[2]) - 1) < 1e-9 for line in lines)


def test_sagemaker_batch_transform_splits_a_file_by_lines(
    sagemaker: str, visa_bundle: Path
) -> None:
    records = visa_records(60, seed=11)
    body = _csv(records, signature_columns(visa_bundle), header=False)
    lines = body.decode().splitlines(keepends=True)
    labels: list[str] = []
    for start in range(0, len(lines), 20):  # MultiRecord mini-batches of whole lines
        chunk = "".join(lines[start : start + 20]).encode()
        response = httpx.post(
            f"{sagemaker}/invocations", content=chunk, headers={"Content-Type": "text/csv"}
        )
        assert response.status_code == 200, response.text  # no Accept: answers in CSV too
        labels += [row[0] for row in csv.reader(io.StringIO(response.text))]
    assert labels == in_process_labels(visa_bundle, records)


def test_sagemaker_json_in_json_out(sagemaker: str, visa_bundle: Path) -> None:
    records = visa_records(10, seed=2)
    columns = signature_columns(visa_bundle)
    for payload in (
        records,
        {"instances": records},
        {"instances": [[r.get(c) for c in columns] for r in records]},
    ):
        response = httpx.post(f"{sagemaker}/invocations", json=payload)
        assert response.status_code == 200, response.text
        body = response.json()
        assert [p["label"] for p in body["predictions"]] == in_process_labels(visa_bundle, records)
        assert body["model"] == {"name": MODEL, "version": 1}
    csv_out = httpx.post(f"{sagemaker}/invocations", json=records, headers={"Accept": "text/csv"})
    assert csv_out.headers["content-type"].startswith("text/csv")
    assert [r[0] for r in csv.reader(io.StringIO(csv_out.text))] == in_process_labels(
        visa_bundle, records
    )


def test_sagemaker_refuses_what_it_cannot_take(sagemaker: str, visa_bundle: Path) -> None:
    url = f"{sagemaker}/invocations"
    plain = httpx.post(url, content=b"hello", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    xml = httpx.post(url, json=visa_records(1), headers={"Accept": "application/xml"})
    assert xml.status_code == 406
    big = httpx.post(
        url, content=b"x" * (6 * 1024 * 1024 + 1), headers={"Content-Type": "text/csv"}
    )
    assert big.status_code == 413
    columns = signature_columns(visa_bundle)
    short = httpx.post(url, content=b"1,2,3\n", headers={"Content-Type": "text/csv"})
    assert short.status_code == 400 and "line 1: 3 values" in short.json()["error"]["message"]
    assert ", ".join(columns) in short.json()["error"]["message"]
    records = visa_records(3)
    records[2]["continent"] = "Atlantis"
    bad_csv = httpx.post(
        url, content=_csv(records, columns, header=True), headers={"Content-Type": "text/csv"}
    )
    assert bad_csv.status_code == 422 and "continent" in bad_csv.json()["error"]["message"]
    bad_json = httpx.post(url, json={"instances": records})
    assert bad_json.status_code == 422
    assert bad_json.json()["error"]["fields"][0]["loc"] == ["instances", 2, "continent"]
    broken = httpx.post(url, content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400


def test_sagemaker_batch_takes_100_mb_and_the_port_variable() -> None:
    spec = platform_spec("sagemaker", {"SAGEMAKER_BATCH": "true", "SAGEMAKER_BIND_TO_PORT": "9123"})
    assert spec.max_body_bytes == 100 << 20 and spec.port == 9123
    assert platform_spec("sagemaker", {}).port == 8080


def test_vertex_instances_predictions_on_the_routes_it_names(visa_bundle: Path) -> None:
    env = {
        "AIP_HTTP_PORT": "8080",
        "AIP_HEALTH_ROUTE": "/v1/endpoints/e/hc",
        "AIP_PREDICT_ROUTE": "/v1/endpoints/e:predict",
    }
    records = visa_records(12, seed=4)
    with _server(visa_bundle, "vertex", env) as server:
        health = httpx.get(f"{server.url}/v1/endpoints/e/hc")
        response = httpx.post(
            f"{server.url}/v1/endpoints/e:predict", json={"instances": records, "parameters": {}}
        )
        bad = [*records[:2], records[2] | {"continent": "Atlantis"}]
        refused = httpx.post(f"{server.url}/v1/endpoints/e:predict", json={"instances": bad})
        params = httpx.post(
            f"{server.url}/v1/endpoints/e:predict",
            json={"instances": records, "parameters": {"k": 1}},
        )
        shape = httpx.post(f"{server.url}/v1/endpoints/e:predict", json={"rows": records})
        big = httpx.post(
            f"{server.url}/v1/endpoints/e:predict",
            content=b" " * (1_600_000),
            headers={"Content-Type": "application/json"},
        )
    assert health.status_code == 200
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(records)
    assert [p["label"] for p in predictions] == in_process_labels(visa_bundle, records)
    assert refused.status_code == 422 and set(refused.json()) == {"error"}
    assert "instances.2.continent" in refused.json()["error"]
    assert params.status_code == 422 and "parameters" in params.json()["error"]
    assert shape.status_code == 422 and "instances" in shape.json()["error"]
    assert big.status_code == 413 and "error" in big.json()
    assert platform_spec("vertex", env).port == 8080


def test_vertex_routes_default_outside_vertex() -> None:
    assert platform_spec("vertex", {}).routes == ("/health", "/predict")
    with pytest.raises(ValueError, match="AIP_PREDICT_ROUTE"):
        platform_spec("vertex", {"AIP_PREDICT_ROUTE": "predict"})


def test_azureml_liveness_and_score(visa_bundle: Path) -> None:
    records = visa_records(9, seed=8)
    columns = signature_columns(visa_bundle)
    split = {
        "input_data": {
            "columns": columns,
            "index": list(range(9)),
            "data": [[r.get(c) for c in columns] for r in records],
        }
    }
    with _server(visa_bundle, "azureml") as server:
        alive = httpx.get(f"{server.url}/")
        answers = [
            httpx.post(f"{server.url}/score", json=p) for p in (split, {"data": records}, records)
        ]
        bad = httpx.post(f"{server.url}/score", json={"data": [records[0] | {"continent": 3}]})
        shape = httpx.post(f"{server.url}/score", json={"foo": 1})
        keys_off = httpx.get(f"{server.url}/v1/model")
        no_v1 = httpx.post(f"{server.url}/v1/predict", json={"records": records})
    assert alive.status_code == 200 and alive.text == "Healthy"
    expected = in_process_labels(visa_bundle, records)
    for response in answers:
        assert response.status_code == 200, response.text
        assert [p["label"] for p in response.json()["predictions"]] == expected
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["loc"] == [
        "data",
        0,
        "continent",
    ]
    assert shape.status_code == 422
    assert keys_off.status_code == 200  # the platform authenticates callers
    assert no_v1.status_code == 404  # only the platform's routes score
    assert platform_spec("azureml", {}).port == 5001
