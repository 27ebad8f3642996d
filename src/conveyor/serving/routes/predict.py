"""``POST /v1/predict`` (JSON records) and ``POST /v1/predict/file`` (CSV or Parquet)."""

from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from conveyor.errors import DataValidationError
from conveyor.serving import batch as scoring
from conveyor.serving.batcher import Batch
from conveyor.serving.deps import State
from conveyor.serving.errors import REQUEST_ID_HEADER, ApiError, invalid_input, request_id
from conveyor.serving.routes._responses import AUTH_ERRORS, INPUT_ERRORS
from conveyor.serving.schemas import PredictResponse

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd

    from conveyor.serving.deps import ServingState

router = APIRouter(tags=["predict"], responses={**AUTH_ERRORS, **INPUT_ERRORS})

_JSON_TYPES = ("application/json", "text/json")
_CSV_CHUNK = 50_000
_MEDIA = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


@router.post(
    "/v1/predict",
    response_model=PredictResponse,
    summary="Predict records",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
            },
        }
    },
)
async def predict(request: Request, state: State) -> Response:
    """Predict 1..N records given in the model's input schema (see PredictRecord)."""
    rid = request_id(request)
    stage = state.metrics.stage
    start = time.perf_counter()
    _require_json(request)
    body = await _read_body(request, state.settings.max_body_bytes)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            400, "malformed_json", f"the body is not valid JSON: {_json_error(exc)}"
        ) from None
    parsed = time.perf_counter()
    stage.labels("parse").observe(parsed - start)
    contract = state.watcher.current.contract
    try:
        records = contract.request_model.model_validate(payload).records  # type: ignore[attr-defined]
    except ValidationError as exc:
        raise invalid_input(exc) from None
    columns = contract.columns_of(records)
    stage.labels("validate").observe(time.perf_counter() - parsed)
    assert state.batcher is not None
    try:
        model, predictions = await state.batcher.predict(columns, len(records), rid)
    except ValueError as exc:  # the model's own input checks (e.g. a derived feature overflowed)
        raise unscorable(exc) from None
    done = time.perf_counter()
    content = json.dumps(
        {
            "request_id": rid,
            "model": {"name": model.record.name, "version": model.record.version},
            "predictions": predictions.labels,
            "probabilities": predictions.probability_dicts(),
        },
        separators=(",", ":"),
    ).encode()
    stage.labels("serialise").observe(time.perf_counter() - done)
    return Response(content, media_type="application/json", headers={REQUEST_ID_HEADER: rid})


@router.post(
    "/v1/predict/file",
    summary="Score a CSV or Parquet file",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The input rows with prediction, proba_<class>, model_name and "
            "model_version columns, as CSV (streamed) or Parquet.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
)
async def predict_file(
    request: Request,
    state: State,
    file: Annotated[UploadFile, File(description="A .csv or .parquet file of records.")],
    output: Annotated[
        scoring.Format | None,
        Query(alias="format", description="Output format (default: input's)."),
    ] = None,
) -> Response:
    """Score every row of an uploaded file; validation is the same as for JSON records."""
    rid = request_id(request)
    limit = state.settings.max_file_bytes
    if file.size is not None and file.size > limit:
        raise ApiError(413, "too_large", f"the file is larger than {limit} bytes")
    name = Path(file.filename or "upload.csv").name
    try:
        kind = scoring.format_of(name, given=_kind_from_type(file.content_type))
    except DataValidationError as exc:
        raise ApiError(415, "unsupported_format", str(exc)) from None
    model = state.watcher.current
    table = await run_in_threadpool(_read_upload, file, kind, name)
    try:
        frame = await run_in_threadpool(model.contract.conform, table, source=name)
    except DataValidationError as exc:
        raise ApiError(422, "invalid_input", str(exc)) from None
    started = time.perf_counter()
    try:
        predictions = await run_in_threadpool(model.predict, frame)
    except ValueError as exc:
        raise unscorable(exc) from None
    seconds = time.perf_counter() - started
    record_batch(
        state, Batch(model, None, [rid] * len(frame), predictions, time.time(), seconds, frame)
    )
    out = scoring.annotate(model, table, predictions)
    fmt = output or kind
    headers = {
        REQUEST_ID_HEADER: rid,
        "Content-Disposition": f'attachment; filename="{Path(name).stem}.predictions.{fmt}"',
    }
    if fmt == "parquet":
        buffer = io.BytesIO()
        out.to_parquet(buffer, index=False, compression="zstd")
        return Response(buffer.getvalue(), media_type=_MEDIA[fmt], headers=headers)
    return StreamingResponse(_csv_chunks(out), media_type=_MEDIA[fmt], headers=headers)


def unscorable(exc: ValueError) -> ApiError:
    """Valid-looking records the model still refused (its message names the problem)."""
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return ApiError(422, "unscorable_input", f"the model cannot score these records: {first}")


def record_batch(state: ServingState, batch: Batch) -> None:
    """Per model call: metrics, and the prediction log when it is on."""
    state.metrics.observe_batch(batch, classification=batch.model.contract.task != "regression")
    if state.predlog is not None:
        state.predlog.append(batch)


def _require_json(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media not in _JSON_TYPES and not media.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the records as application/json")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_error(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    return "not UTF-8 text"


def _kind_from_type(content_type: str | None) -> str | None:
    media = (content_type or "").split(";")[0].strip().lower()
    if "parquet" in media:
        return "parquet"
    if media in ("text/csv", "application/csv"):
        return "csv"
    return None


def _read_upload(file: UploadFile, kind: scoring.Format, name: str) -> pd.DataFrame:
    """The uploaded table, read by the data stage's readers (same messages as for training)."""
    from conveyor.config import SourceConfig
    from conveyor.data import sources

    with tempfile.TemporaryDirectory(prefix="conveyor-upload-") as tmp:
        path = Path(tmp) / f"upload.{kind}"
        with path.open("wb") as fh:
            file.file.seek(0)
            while chunk := file.file.read(1 << 20):
                fh.write(chunk)
        try:
            return sources.load(SourceConfig(type=kind, path=str(path)), Path(tmp))
        except DataValidationError as exc:
            message = str(exc).replace(str(path), name)
            raise ApiError(400, "unreadable_file", message) from None


def _csv_chunks(out: pd.DataFrame) -> Iterator[bytes]:
    for start in range(0, max(len(out), 1), _CSV_CHUNK):
        part = out.iloc[start : start + _CSV_CHUNK]
        yield part.to_csv(index=False, header=start == 0).encode()
