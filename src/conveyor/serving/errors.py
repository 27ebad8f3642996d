"""Errors as HTTP responses. The only place that maps conveyor errors to status codes.

Every error body is ``{"error": {"code", "message", "request_id", "fields": [{"loc", "msg"}]}}``.
Messages say what was wrong with the request; they never carry tracebacks, paths or store URLs.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from conveyor.errors import DataValidationError

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from pydantic import ValidationError

log = logging.getLogger("conveyor.serving")

REQUEST_ID_HEADER = "X-Request-ID"
_MAX_SHOWN = 50  # field errors listed per response
_MAX_INPUT = 60  # characters of an offending value quoted back


class ApiError(Exception):
    """A request the server refuses, with its status, a stable code and a message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.headers = headers or {}


def request_id(request: Request) -> str:
    """The id of this request: the client's ``X-Request-ID`` when sane, else a new one."""
    cached = getattr(request.state, "request_id", None)
    if cached:
        return str(cached)
    given = request.headers.get(REQUEST_ID_HEADER, "")
    rid = given if 0 < len(given) <= 64 and given.replace("-", "").isalnum() else uuid.uuid4().hex
    request.state.request_id = rid
    return rid


def error_response(request: Request, error: ApiError) -> JSONResponse:
    """The JSON error response for ``error``."""
    rid = request_id(request)
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "request_id": rid,
            "fields": error.fields[:_MAX_SHOWN],
        }
    }
    headers = {REQUEST_ID_HEADER: rid, **error.headers}
    return JSONResponse(body, status_code=error.status, headers=headers)


def invalid_input(exc: ValidationError, *, prefix: tuple[str | int, ...] = ()) -> ApiError:
    """A 422 naming each bad field (``records.3.continent``) and what was wrong with it."""
    fields = [_field(err, prefix) for err in exc.errors(include_url=False, include_context=False)]
    return _invalid(fields)


def _invalid(fields: list[dict[str, Any]]) -> ApiError:
    shown = "; ".join(f"{'.'.join(map(str, f['loc']))}: {f['msg']}" for f in fields[:3])
    more = f" (and {len(fields) - 3} more)" if len(fields) > 3 else ""
    return ApiError(422, "invalid_input", f"invalid input: {shown}{more}", fields=fields)


def _field(err: Any, prefix: tuple[str | int, ...]) -> dict[str, Any]:
    loc = [*prefix, *err["loc"]] or ["body"]
    msg = str(err["msg"])
    if err.get("type") == "missing":
        msg = "field required"
    elif err.get("type") == "extra_forbidden":
        msg = "unknown field (not an input of this model)"
    elif "input" in err and err.get("type") not in ("model_type", "list_type", "dict_type"):
        shown = repr(err["input"])
        if len(shown) <= _MAX_INPUT:
            msg += f" (got {shown})"
    return {"loc": loc, "msg": msg}


def install(app: FastAPI) -> None:
    """Register the handlers: ApiError, FastAPI's validation errors, HTTP errors, the rest."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        fields = [_field(e, ()) for e in exc.errors()]
        return error_response(request, _invalid(fields))

    async def on_data_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, ApiError(422, "invalid_input", str(exc)))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        error = ApiError(exc.status_code, code, message, headers=dict(exc.headers or {}))
        return error_response(request, error)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id(request)
        log.error("request %s failed", rid, exc_info=exc)
        error = ApiError(500, "internal_error", f"internal error; quote request id {rid}")
        return error_response(request, error)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(DataValidationError, on_data_error)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
