"""SageMaker (bring your own container): ``GET /ping``, ``POST /invocations`` and
``GET /execution-parameters`` on port 8080 (or ``$SAGEMAKER_BIND_TO_PORT``).

``/invocations`` takes ``text/csv`` (rows in the signature's column order with no header, as
batch transform splits them by line, or with a header row of column names) and
``application/json`` (a list of records, ``{"instances": [...]}`` or ``{"records": [...]}``;
a record is an object or a list of values in column order); anything else is a 415. The answer
is in the ``Accept`` type (``text/csv``: one line per record; ``application/json``:
``{"predictions": [...]}``), by default the request's own type; another ``Accept`` is a 406.
Bodies are capped at 6 MB, or 100 MB in batch transform (``SAGEMAKER_BATCH=true``;
``$SAGEMAKER_MAX_PAYLOAD_IN_MB`` when SageMaker sets it).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from conveyor.serving.deps import State  # noqa: TC001 - FastAPI reads annotations at runtime
from conveyor.serving.errors import REQUEST_ID_HEADER, ApiError, request_id
from conveyor.serving.platforms import MB, PlatformSpec, env_port
from conveyor.serving.platforms._core import (
    CSV,
    JSON,
    as_records,
    csv_lines,
    is_ready,
    load_body,
    media_type,
    predict_csv,
    predict_records,
    prediction_items,
)
from conveyor.serving.routes._json import read_body

if TYPE_CHECKING:
    from collections.abc import Mapping

    from conveyor.serving.contract import InputContract

PORT = 8080
REALTIME_MB = 6
BATCH_MB = 100
_TYPES = (CSV, JSON)


def spec(env: Mapping[str, str]) -> PlatformSpec:
    """SageMaker's contract in the environment ``env``."""
    batch = env.get("SAGEMAKER_BATCH", "").strip().lower() == "true"
    limit_mb = BATCH_MB if batch else REALTIME_MB
    given = env.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "").strip()
    if batch and given.isdigit() and 0 < int(given) <= BATCH_MB:
        limit_mb = int(given)
    limit = limit_mb * MB
    router = APIRouter(tags=["sagemaker"])

    @router.get("/ping", summary="SageMaker health check")
    async def ping(state: State) -> Response:
        return Response(status_code=200 if is_ready(state) else 503)

    @router.get("/execution-parameters", summary="SageMaker batch transform parameters")
    async def execution_parameters() -> JSONResponse:
        return JSONResponse(
            {
                "MaxConcurrentTransforms": 1,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": limit_mb,
            }
        )

    @router.post("/invocations", summary="SageMaker inference")
    async def invocations(request: Request, state: State) -> Response:
        rid = request_id(request)
        given = media_type(request)
        if given not in _TYPES:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type {given or '(none)'!r}: send text/csv or application/json",
            )
        answer = _accepted(request.headers.get("accept", ""), default=given)
        body = await read_body(request, limit)
        if given == CSV:
            model, predictions = await predict_csv(state, body, rid)
        else:
            records = _json_records(body, state.watcher.current.contract)
            model, predictions = await predict_records(state, records, rid, name="instances")
        headers = {REQUEST_ID_HEADER: rid}
        if answer == CSV:
            return Response(csv_lines(predictions), media_type=CSV, headers=headers)
        content = {
            "predictions": prediction_items(predictions),
            "model": {"name": model.record.name, "version": model.record.version},
        }
        return Response(
            json.dumps(content, separators=(",", ":")), media_type=JSON, headers=headers
        )

    return PlatformSpec(
        name="sagemaker",
        port=env_port(env, "SAGEMAKER_BIND_TO_PORT", PORT),
        max_body_bytes=limit,
        router=router,
        routes=("/ping", "/invocations", "/execution-parameters"),
        health="/ping",
    )


def _accepted(header: str, *, default: str) -> str:
    """The first type of ``Accept`` this server writes (``*/*`` or none: ``default``).

    Raises:
        ApiError: 406 when it lists only types this server does not write.
    """
    kinds = [part.split(";")[0].strip().lower() for part in header.split(",") if part.strip()]
    for kind in kinds or ["*/*"]:
        if kind in _TYPES:
            return kind
        if kind in ("*/*", "text/*", "application/*"):
            return default if kind == "*/*" or default.startswith(kind[:-1]) else _other(kind)
    raise ApiError(
        406,
        "not_acceptable",
        f"Accept {header!r}: this model answers in text/csv or application/json",
    )


def _other(kind: str) -> str:
    return CSV if kind == "text/*" else JSON


def _json_records(body: bytes, contract: InputContract) -> list[Any]:
    """A list of records, ``{"instances": [...]}`` or ``{"records": [...]}``.

    Raises:
        ApiError: 400 not JSON, 422 another shape.
    """
    payload = load_body(body, contract, expected='[{...}, ...] or {"instances": [...]}')
    if (
        isinstance(payload, dict)
        and len(payload) == 1
        and next(iter(payload)) in ("instances", "records")
    ):
        payload = next(iter(payload.values()))
    if not isinstance(payload, list):
        raise ApiError(
            422,
            "invalid_input",
            'send a JSON list of records, {"instances": [...]} or {"records": [...]}',
            fields=[{"loc": ["body"], "msg": "expected a list of instances"}],
        )
    return as_records(payload, contract, name="instances")
