"""A multipart file upload, read by the route itself: after the API key is checked (FastAPI
parses ``UploadFile`` parameters before any dependency runs), counted against the size limit as
it arrives, and written straight to one file on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from conveyor.serving.errors import ApiError, invalid_fields

if TYPE_CHECKING:
    from pathlib import Path

    from fastapi import Request

FIELD = "file"
ENVELOPE = 64 << 10  # boundaries, part headers and small fields allowed on top of the file
_MAX_PARTS = 8
_MAX_HEADERS = 8 << 10  # bytes of headers per part
_WRITE_EVERY = 1 << 20  # file bytes gathered before a write (one thread hop per MiB)
_MAX_NAME = 100  # characters kept of the client's file name


@dataclass(frozen=True, slots=True)
class Upload:
    """The uploaded file, on disk."""

    path: Path
    filename: str  # the client's name, reduced to a safe base name (see safe_filename)
    content_type: str | None
    size: int


async def receive_file(request: Request, target: Path, *, limit: int) -> Upload:
    """Stream the ``file`` part of a multipart/form-data body into ``target``.

    A declared ``Content-Length`` over the limit is refused before a byte is read; otherwise
    the bytes are counted as they arrive and reading stops at the limit.

    Raises:
        ApiError: 415 not multipart, 400 malformed, 413 over ``limit`` bytes, 422 no file.
    """
    media, params = parse_options_header(request.headers.get("content-type", ""))
    if media != b"multipart/form-data":
        raise ApiError(
            415, "unsupported_media_type", f"send the file as multipart/form-data (field {FIELD!r})"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "malformed_multipart", "the multipart body has no boundary")
    too_large = ApiError(413, "too_large", f"the file is larger than {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + ENVELOPE:
        raise too_large
    parts = _Parts(limit=limit)
    received = 0
    try:
        with target.open("wb") as out:
            parser = MultipartParser(boundary, parts.callbacks())
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit + ENVELOPE:
                    raise too_large
                parser.write(chunk)
                if parts.buffered >= _WRITE_EVERY:
                    await run_in_threadpool(out.write, parts.take())
            parser.finalize()
            await run_in_threadpool(out.write, parts.take())
        if not parts.ended:  # python-multipart's finalize() does not check (a cut-off file)
            raise ApiError(
                400, "malformed_multipart", "the multipart body ends before its closing boundary"
            )
    except FormParserError as exc:
        raise ApiError(
            400, "malformed_multipart", f"the multipart body is malformed: {exc}"
        ) from None
    except ClientDisconnect:
        raise ApiError(400, "incomplete_body", "the client closed the upload early") from None
    if parts.file is None:
        raise invalid_fields([{"loc": ["body", FIELD], "msg": "field required"}])
    return Upload(target, parts.file.filename, parts.file.content_type, parts.file.size)


def safe_filename(raw: str) -> str:
    """The client's file name as a base name that is safe to log, quote and put in a header:
    no directories, no control or invisible characters, at most 100 characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip().lstrip(".")
    if len(name) > _MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 10 else ""
        name = f"{(stem or name)[: _MAX_NAME - len(ext) - 1]}{'.' if ext else ''}{ext}"
    return name or "upload"


@dataclass(slots=True)
class _File:
    filename: str
    content_type: str | None
    size: int = 0


@dataclass(slots=True)
class _Parts:
    """python-multipart callbacks: keep the ``file`` part's bytes, skip small other fields."""

    limit: int
    file: _File | None = None
    buffered: int = 0
    ended: bool = False
    _pending: list[bytes] = field(default_factory=list)
    _count: int = 0
    _in_file: bool = False
    _header_bytes: int = 0
    _name: bytes = b""
    _value: bytes = b""
    _headers: dict[bytes, bytes] = field(default_factory=dict)

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def take(self) -> bytes:
        data = b"".join(self._pending)
        self._pending.clear()
        self.buffered = 0
        return data

    def on_part_begin(self) -> None:
        self._count += 1
        if self._count > _MAX_PARTS:
            raise ApiError(400, "malformed_multipart", f"more than {_MAX_PARTS} parts")
        self._headers.clear()
        self._header_bytes = 0
        self._in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._grow(end - start)
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._grow(end - start)
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._name.strip().lower()] = self._value.strip()
        self._name = self._value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") != FIELD.encode():
            return  # another form field: its bytes count against the envelope, then vanish
        if self.file is not None:
            raise ApiError(400, "malformed_multipart", f"send one {FIELD!r} part, not several")
        filename = _decode(options.get(b"filename", b""))
        ctype = _decode(self._headers.get(b"content-type", b"")) or None
        self.file = _File(safe_filename(filename), ctype)
        self._in_file = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file or self.file is None:
            return
        self.file.size += end - start
        if self.file.size > self.limit:
            raise ApiError(413, "too_large", f"the file is larger than {self.limit} bytes")
        self._pending.append(data[start:end])
        self.buffered += end - start

    def on_part_end(self) -> None:
        self._in_file = False

    def on_end(self) -> None:
        self.ended = True

    def _grow(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > _MAX_HEADERS:
            raise ApiError(400, "malformed_multipart", "a part's headers are too long")


def _decode(raw: bytes) -> str:
    """Header bytes as text: UTF-8 as browsers and httpx send it, else Latin-1 (RFC 7230)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
