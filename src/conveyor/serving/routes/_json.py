"""Reading a JSON body of records: bounded in bytes as it arrives, then in fields before it is
parsed, then in structure before pydantic (see :meth:`InputContract.precheck`)."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from conveyor.serving.contract import parse_int
from conveyor.serving.errors import MAX_SHOWN, ApiError, invalid_fields, invalid_input

if TYPE_CHECKING:
    from fastapi import Request

    from conveyor.serving.contract import InputContract

_JSON_TYPES = ("application/json", "text/json")


def require_json(request: Request) -> None:
    """Refuse (415) a body declared as anything but JSON."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media not in _JSON_TYPES and not media.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the records as application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) past ``limit`` bytes: as declared, or as counted arriving."""
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


def parse_records(body: bytes, contract: InputContract) -> tuple[float, float, list[Any]]:
    """JSON -> structural pre-checks -> pydantic; returns the seconds of the parse and of the
    validation, and the validated records.

    Raises:
        ApiError: 400 not JSON (or nested past the recursion limit), 422 invalid records.
    """
    start = time.perf_counter()
    payload = load_json(body, contract, expected='{"records": [{...}, ...]}')
    parsed = time.perf_counter()
    records = validate_payload(payload, contract)
    return parsed - start, time.perf_counter() - parsed, records


def load_json(body: bytes, contract: InputContract, *, expected: str) -> Any:
    """The parsed body, refused before parsing when it has more fields than ``contract``'s
    largest request (``expected`` shows the shape in messages).

    Raises:
        ApiError: 400 not JSON (or nested past the recursion limit), 422 too many fields.
    """
    fields = _count_fields(body, at_most=1 + contract.max_records * len(contract.columns))
    if fields is not None:  # parsing would hold the GIL for seconds and take ~100 B per field
        raise invalid_fields(
            [
                {
                    "loc": ["body"],
                    "msg": f"{fields:,} fields where {contract.max_records:,} records of "
                    f"{len(contract.columns)} inputs have at most "
                    f"{1 + contract.max_records * len(contract.columns):,}",
                }
            ]
        )
    try:  # UTF-8 only (RFC 8259): json.loads would take UTF-16 and -32, which the count misses
        return json.loads(body.decode("utf-8-sig"), parse_int=parse_int)
    except RecursionError:
        raise ApiError(
            400,
            "malformed_json",
            f"the body nests more than {sys.getrecursionlimit()} levels deep (expected {expected})",
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ApiError(
            400, "malformed_json", f"the body is not valid JSON: {_json_error(exc)}"
        ) from None


def validate_payload(payload: Any, contract: InputContract) -> list[Any]:
    """``{"records": [...]}`` (already parsed) -> the validated records.

    Raises:
        ApiError: 422 naming each invalid field (``records.3.continent``).
    """
    problems, total = contract.precheck(payload, limit=MAX_SHOWN)
    if problems:
        raise invalid_fields(problems, total=total)
    try:
        records: list[Any] = contract.request_model.model_validate(payload).records  # type: ignore[attr-defined]
    except ValidationError as exc:
        raise invalid_input(exc) from None
    return records


def _count_fields(body: bytes, *, at_most: int) -> int | None:
    """How many object fields ``body`` has, when more than ``at_most``; else None.

    Counted on the bytes, in milliseconds: a field's name ends with ``"``, optional
    whitespace and ``:``, which inside a string can only follow an escaped quote (``\\":``,
    counted too: an over-count for odd text, never an under-count).
    """
    if body.count(b":") <= at_most:
        return None
    fields = body.translate(None, b" \t\r\n").count(b'":')
    return fields if fields > at_most else None


def _json_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(exc)[:200]
