"""Azure ML (online endpoint, custom container): liveness and readiness ``GET /``, scoring
``POST /score``, on port 5001 (``$CONVEYOR_AZUREML_PORT`` or ``--port`` override it).

``/score`` takes JSON: ``{"input_data": {"columns": [...], "data": [[...], ...]}}`` (pandas'
split orient, what Azure ML's studio and MLflow deployments send), ``{"input_data": [...]}``,
``{"data": [...]}`` or a list of records; a record is an object or a list of values in the
signature's column order. The answer is ``{"predictions": [...], "model": {...}}``, one
prediction per record; errors are conveyor's (``{"error": {"code", "message", "fields"}}``)
naming the record and field (``data.3.continent``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from conveyor.serving.deps import State  # noqa: TC001 - FastAPI reads annotations at runtime
from conveyor.serving.errors import REQUEST_ID_HEADER, ApiError, invalid_fields, request_id
from conveyor.serving.platforms import PlatformSpec, env_port
from conveyor.serving.platforms._core import (
    JSON,
    as_records,
    is_ready,
    load_body,
    media_type,
    predict_records,
    prediction_items,
)
from conveyor.serving.routes._json import read_body

if TYPE_CHECKING:
    from collections.abc import Mapping

    from conveyor.serving.contract import InputContract

PORT = 5001


def spec(env: Mapping[str, str], *, max_body_bytes: int = 8 << 20) -> PlatformSpec:
    """Azure ML's contract in the environment ``env``."""
    router = APIRouter(tags=["azureml"])

    @router.get("/", summary="Azure ML liveness and readiness")
    async def alive(state: State) -> Response:
        ok = is_ready(state)
        return PlainTextResponse("Healthy" if ok else "Unhealthy", status_code=200 if ok else 503)

    @router.post("/score", summary="Azure ML scoring")
    async def score(request: Request, state: State) -> Response:
        rid = request_id(request)
        given = media_type(request)
        if given and given != JSON and not given.endswith("+json"):
            raise ApiError(415, "unsupported_media_type", "send the records as application/json")
        body = await read_body(request, max_body_bytes)
        name, records = _records(body, state.watcher.current.contract)
        model, predictions = await predict_records(state, records, rid, name=name)
        content = {
            "predictions": prediction_items(predictions),
            "model": {"name": model.record.name, "version": model.record.version},
        }
        return Response(
            json.dumps(content, separators=(",", ":")),
            media_type=JSON,
            headers={REQUEST_ID_HEADER: rid},
        )

    return PlatformSpec(
        name="azureml",
        port=env_port(env, "CONVEYOR_AZUREML_PORT", PORT),
        max_body_bytes=max_body_bytes,
        router=router,
        routes=("/", "/score"),
        health="/",
    )


def _records(body: bytes, contract: InputContract) -> tuple[str, list[Any]]:
    """Where the records are (for error locations) and the records.

    Raises:
        ApiError: 400 not JSON, 422 another shape.
    """
    payload = load_body(
        body, contract, expected='{"input_data": {"columns": [...], "data": [...]}}'
    )
    if isinstance(payload, list):
        return "records", as_records(payload, contract, name="records")
    if (
        not isinstance(payload, dict)
        or len(payload) != 1
        or next(iter(payload)) not in ("data", "input_data")
    ):
        raise invalid_fields(
            [
                {
                    "loc": ["body"],
                    "msg": 'expected {"input_data": {"columns": [...], "data": [...]}}, '
                    '{"data": [...]} or a list of records',
                }
            ]
        )
    key, value = next(iter(payload.items()))
    if key == "input_data" and isinstance(value, dict):
        return "input_data.data", _split(value, contract)
    return key, as_records(value, contract, name=key)


def _split(table: dict[str, Any], contract: InputContract) -> list[Any]:
    """pandas' split orient: ``columns`` and ``data`` (and an ignored ``index``)."""
    columns, rows = table.get("columns"), table.get("data")
    extra = sorted(set(table) - {"columns", "data", "index"})
    if extra or not isinstance(columns, list) or not isinstance(rows, list):
        raise invalid_fields(
            [{"loc": ["input_data"], "msg": 'expected {"columns": [...], "data": [[...], ...]}'}]
        )
    if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        raise invalid_fields(
            [{"loc": ["input_data", "columns"], "msg": "expected distinct column names"}]
        )
    records: list[Any] = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise invalid_fields(
                [
                    {
                        "loc": ["input_data", "data", i],
                        "msg": f"expected a list of {len(columns)} values",
                    }
                ]
            )
        records.append(dict(zip(columns, row, strict=True)))
    return records
