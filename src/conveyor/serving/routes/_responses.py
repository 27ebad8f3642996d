"""Error responses shared by the documented routes."""

from __future__ import annotations

from typing import Any

from conveyor.serving.schemas import ErrorResponse

_ERROR: dict[str, Any] = {"model": ErrorResponse}

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {**_ERROR, "description": "No API key, or a wrong one."},
    403: {**_ERROR, "description": "The API key was revoked."},
}

INPUT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR, "description": "The body is not valid JSON (or not a readable file)."},
    413: {**_ERROR, "description": "The body (or a file's rows) is more than the server takes."},
    415: {**_ERROR, "description": "Unsupported content type."},
    422: {**_ERROR, "description": "Invalid input: each bad field is listed."},
}
