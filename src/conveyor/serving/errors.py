"""Errors as HTTP responses. The only place that maps conveyor errors to status codes.

Every error body is ``{"error": {"code", "message", "request_id", "fields": [{"loc", "msg"}]}}``.
Messages say what was wrong with the request; they never carry tracebacks, paths or store URLs.
Names and values the client sent are quoted back escaped (control characters as ``\\x00``) and
cut short (:func:`safe_text`), so an error cannot echo a NUL, a terminal escape or megabytes.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from conveyor.errors import DataValidationError
from conveyor.serving.contract import UNKNOWN_FIELD

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from pydantic import ValidationError

log = logging.getLogger("conveyor.serving")

REQUEST_ID_HEADER = "X-Request-ID"
MAX_SHOWN = 50  # field errors listed per response
_MAX_INPUT = 60  # characters of an offending value quoted back
_MAX_NAME = 80  # characters of a client-supplied name (field, column, file) quoted back
_SCALARS = (str, int, float, bool, type(None))


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
            "message": safe_text(error.message, limit=None, keep="\n"),
            "request_id": rid,
            "fields": error.fields[:MAX_SHOWN],
        }
    }
    headers = {REQUEST_ID_HEADER: rid, **error.headers}
    return JSONResponse(body, status_code=error.status, headers=headers)


def safe_text(text: str, *, limit: int | None = _MAX_NAME, keep: str = "") -> str:
    """``text`` fit to quote back to a client: control and other non-printable characters
    escaped as ``repr`` does (``\\x00``, ``\\u202e``) except those in ``keep``, and cut to
    ``limit`` characters (None: no cut) with an ellipsis."""
    cut = limit is not None and len(text) > limit
    if cut:
        text = text[:limit]
    if not text.isprintable():
        text = "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)
    return text + "..." if cut else text


def invalid_input(exc: ValidationError, *, prefix: tuple[str | int, ...] = ()) -> ApiError:
    """A 422 naming each bad field (``records.3.continent``) and what was wrong with it.

    Only the first :data:`MAX_SHOWN` of pydantic's errors are converted (their count is kept).
    """
    errors = exc.errors(include_url=False, include_context=False)
    fields = [_field(err, prefix) for err in errors[:MAX_SHOWN]]
    return invalid_fields(fields, total=len(errors))


def invalid_fields(fields: list[dict[str, Any]], *, total: int | None = None) -> ApiError:
    """A 422 from field errors (``{"loc", "msg"}``), of ``total`` found (default: all given).

    Client-supplied names in ``loc`` are escaped and shortened here, once for every route.
    """
    fields = [{"loc": [_loc(part) for part in f["loc"]], "msg": f["msg"]} for f in fields]
    total = len(fields) if total is None else total
    shown = "; ".join(f"{'.'.join(map(str, f['loc']))}: {f['msg']}" for f in fields[:3])
    more = f" (and {total - 3} more)" if total > 3 else ""
    return ApiError(422, "invalid_input", f"invalid input: {shown}{more}", fields=fields)


def _loc(part: Any) -> str | int:
    return part if isinstance(part, int) else safe_text(str(part))


def _field(err: Any, prefix: tuple[str | int, ...]) -> dict[str, Any]:
    loc = [*prefix, *err["loc"]] or ["body"]
    msg = str(err["msg"])
    if err.get("type") == "missing":
        msg = "field required"
    elif err.get("type") == "extra_forbidden":
        msg = UNKNOWN_FIELD
    elif "input" in err and err.get("type") not in ("model_type", "list_type", "dict_type"):
        msg += _quoted(err["input"])
    return {"loc": loc, "msg": msg}


def _quoted(value: Any) -> str:
    """`` (got 'Atlantis')`` for a short scalar; nothing for containers or long values (their
    repr could be megabytes, or nested past the recursion limit)."""
    if not isinstance(value, _SCALARS) or (isinstance(value, str) and len(value) > _MAX_INPUT):
        return ""
    if isinstance(value, int) and value.bit_length() > 200:  # repr would be long, or refused
        return ""
    shown = repr(value)
    return f" (got {safe_text(shown, limit=None)})" if len(shown) <= _MAX_INPUT else ""


def install(app: FastAPI) -> None:
    """Register the handlers: ApiError, FastAPI's validation errors, HTTP errors, the rest."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        fields = [_field(e, ()) for e in errors[:MAX_SHOWN]]
        return error_response(request, invalid_fields(fields, total=len(errors)))

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
