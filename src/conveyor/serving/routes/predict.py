"""``POST /v1/predict`` (JSON records) and ``POST /v1/predict/file`` (CSV or Parquet).

Both bound the work before doing it: bytes as they arrive, then (JSON) the structure of the body
before pydantic or (files) the row count before scoring, which then goes chunk by chunk.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from conveyor.errors import DataValidationError
from conveyor.serving import batch as scoring
from conveyor.serving.batcher import Batch
from conveyor.serving.deps import State
from conveyor.serving.errors import REQUEST_ID_HEADER, ApiError, request_id
from conveyor.serving.routes._json import parse_records, read_body, require_json
from conveyor.serving.routes._responses import AUTH_ERRORS, INPUT_ERRORS
from conveyor.serving.routes._upload import FIELD, receive_file
from conveyor.serving.schemas import PredictResponse

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd
    from starlette.types import Receive, Scope, Send

    from conveyor.serving.deps import ServingState
    from conveyor.serving.model import LoadedModel

router = APIRouter(tags=["predict"], responses={**AUTH_ERRORS, **INPUT_ERRORS})

_INLINE_BYTES = 64 << 10  # smaller JSON bodies are parsed on the event loop (well under 1 ms)
CHUNK_ROWS = 50_000  # rows of an uploaded file scored at a time
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
    require_json(request)
    body = await read_body(request, state.settings.max_body_bytes)
    contract = state.watcher.current.contract
    if len(body) <= _INLINE_BYTES:
        parse_seconds, validate_seconds, records = parse_records(body, contract)
    else:  # off the event loop, so /health and small requests are answered meanwhile
        parse_seconds, validate_seconds, records = await anyio.to_thread.run_sync(
            parse_records, body, contract, limiter=state.parsers
        )
    stage.labels("parse").observe(parse_seconds)
    stage.labels("validate").observe(validate_seconds)
    columns = contract.columns_of(records)
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
    response_class=FileResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [FIELD],
                        "properties": {
                            FIELD: {
                                "type": "string",
                                "format": "binary",
                                "description": "A .csv or .parquet file of records.",
                            }
                        },
                    }
                }
            },
        }
    },
    responses={
        200: {
            "description": "The input rows with prediction, proba_<class>, model_name and "
            "model_version columns, as CSV or Parquet.",
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
    output: Annotated[
        scoring.Format | None,
        Query(alias="format", description="Output format (default: input's)."),
    ] = None,
) -> Response:
    """Score every row of an uploaded file; validation is the same as for JSON records.

    The upload is read here, not by FastAPI, so that the API key is checked first.
    """
    rid = request_id(request)
    settings = state.settings
    work = Path(tempfile.mkdtemp(prefix="conveyor-upload-"))
    try:
        upload = await receive_file(request, work / "upload", limit=settings.max_file_bytes)
        name = upload.filename
        try:
            kind = scoring.format_of(name, given=_kind_from_type(upload.content_type))
        except DataValidationError as exc:
            raise ApiError(415, "unsupported_format", str(exc)) from None
        model = state.watcher.current
        fmt = output or kind
        scored = work / f"scored.{fmt}"
        batches = await run_in_threadpool(
            _score_file,
            model,
            upload.path,
            kind,
            name,
            scored,
            settings.max_file_rows,
            rid,
            state.predlog is not None,
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for batch in batches:  # logged once the whole file passed: a refused file logs nothing
        record_batch(state, batch)
    headers = {
        REQUEST_ID_HEADER: rid,
        "Content-Disposition": attachment(f"{Path(name).stem}.predictions.{fmt}"),
    }
    return _ScoredFile(scored, work, media_type=_MEDIA[fmt], headers=headers)


class _ScoredFile(FileResponse):
    """The scored file; its working folder goes once the response is sent or sending failed
    (a background task would not run when the client leaves before the end)."""

    def __init__(self, path: Path, work: Path, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.work = work

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            shutil.rmtree(self.work, ignore_errors=True)  # a few files: no thread hop needed


def attachment(filename: str) -> str:
    """A ``Content-Disposition`` value for ``filename`` (already a safe base name): an ASCII
    fallback and the exact name percent-encoded as UTF-8 (RFC 6266 / 8187), so no character of
    it can end the parameter or the header."""
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def unscorable(exc: ValueError) -> ApiError:
    """Valid-looking records the model still refused (its message names the problem)."""
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return ApiError(422, "unscorable_input", f"the model cannot score these records: {first}")


def record_batch(state: ServingState, batch: Batch) -> None:
    """Per model call: metrics, and the prediction log when it is on."""
    state.metrics.observe_batch(batch, classification=batch.model.contract.task != "regression")
    if state.predlog is not None:
        state.predlog.append(batch)


def _kind_from_type(content_type: str | None) -> str | None:
    media = (content_type or "").split(";")[0].strip().lower()
    if "parquet" in media:
        return "parquet"
    if media in ("text/csv", "application/csv"):
        return "csv"
    return None


def _score_file(
    model: LoadedModel,
    path: Path,
    kind: scoring.Format,
    name: str,
    target: Path,
    max_rows: int,
    rid: str,
    keep_frames: bool,
) -> list[Batch]:
    """Score the file at ``path`` chunk by chunk into ``target``; returns the batches to log
    (with the model's frames only when ``keep_frames``: the prediction log needs them).

    Raises:
        ApiError: 400 unreadable (the data stage's message), 413 more than ``max_rows`` rows
            (Parquet: from its metadata, before reading; CSV: as soon as counted), 422 invalid.
    """
    from conveyor.config import SourceConfig
    from conveyor.data import sources

    source = SourceConfig(type=kind, path=str(path))
    try:
        total, chunks = sources.iter_chunks(source, path.parent, rows=CHUNK_ROWS)
    except DataValidationError as exc:
        raise _unreadable(exc, path, name) from None
    if total is not None and total > max_rows:
        raise _too_many_rows(max_rows, f"{total:,}")
    batches: list[Batch] = []

    def outputs() -> Iterator[pd.DataFrame]:
        scored = scoring.score_chunks(model, _bounded(chunks, path, name, max_rows), source=name)
        while True:
            started = time.perf_counter()
            item = next(scored, None)
            if item is None:
                return
            frame, out, predictions = item
            seconds = time.perf_counter() - started
            kept = frame if keep_frames else None
            batches.append(
                Batch(model, None, [rid] * len(frame), predictions, time.time(), seconds, kept)
            )
            yield out

    try:
        scoring.write_table(outputs(), target, fmt=scoring.format_of(target.name))
    except DataValidationError as exc:
        raise ApiError(422, "invalid_input", str(exc)) from None
    return batches


def _bounded(
    chunks: Iterator[pd.DataFrame], path: Path, name: str, max_rows: int
) -> Iterator[pd.DataFrame]:
    """``chunks`` with reading errors as 400s, refused (413) once past ``max_rows`` rows."""
    rows = 0
    try:
        for chunk in chunks:
            rows += len(chunk)
            if rows > max_rows:
                raise _too_many_rows(max_rows, "more")
            yield chunk
    except DataValidationError as exc:
        raise _unreadable(exc, path, name) from None


def _unreadable(exc: DataValidationError, path: Path, name: str) -> ApiError:
    return ApiError(400, "unreadable_file", str(exc).replace(str(path), name))


def _too_many_rows(max_rows: int, found: str) -> ApiError:
    return ApiError(
        413,
        "too_many_rows",
        f"the file has {found} rows; this server scores at most {max_rows:,} per upload "
        "(split it, or score it with `conveyor predict`)",
    )
