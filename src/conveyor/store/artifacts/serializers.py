"""Serializers chosen by type: DataFrame -> Parquet, dict/list -> JSON, figure -> PNG, else joblib.

Every serializer is deterministic: the same object gives the same bytes, so the same step output
gets the same artifact address on every run and every executor.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

from conveyor.errors import SerializationError

KINDS = ("parquet", "json", "png", "bytes", "joblib")


def kind_of(obj: Any) -> str:
    """The serializer kind conveyor picks for ``obj``."""
    module = type(obj).__module__
    if module.startswith("pandas") and type(obj).__name__ == "DataFrame":
        return "parquet"
    if module.startswith("matplotlib") and hasattr(obj, "savefig"):
        return "png"
    if isinstance(obj, bytes | bytearray):
        return "bytes"  # e.g. an HTML report, stored as is
    if isinstance(obj, dict | list | str | int | float | bool) or obj is None:
        return "json" if _is_json(obj) else "joblib"
    return "joblib"


def serialize(obj: Any) -> tuple[str, bytes]:
    """Encode ``obj`` and return ``(kind, bytes)``.

    Raises:
        SerializationError: the object cannot be encoded (e.g. it is not picklable).
    """
    kind = kind_of(obj)
    if kind == "parquet":
        try:
            return kind, _parquet_dumps(obj)
        except (OverflowError, TypeError, ValueError, ImportError):
            # e.g. an object column of Python ints beyond int64 (raw data before validation):
            # keep the frame exactly as it is, as joblib, rather than fail the step
            kind = "joblib"
    try:
        return kind, _ENCODERS[kind](obj)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize {type(obj).__qualname__} as {kind}: {exc}"
        ) from exc


def deserialize(kind: str, data: bytes) -> Any:
    """Decode bytes written by :func:`serialize` as ``kind``.

    Raises:
        SerializationError: unknown kind, or the bytes do not decode.
    """
    if kind not in _DECODERS:
        raise SerializationError(f"unknown artifact kind {kind!r}; known: {', '.join(KINDS)}")
    try:
        return _DECODERS[kind](data)
    except Exception as exc:
        raise SerializationError(f"cannot decode {kind} artifact: {exc}") from exc


def _is_json(obj: Any) -> bool:
    # JSON only if it gives the object back: int keys would come back as str, tuples as lists,
    # and keys of mixed types cannot be sorted into canonical bytes at all.
    try:
        return bool(json.loads(_json_dumps(obj)) == obj)
    except (TypeError, ValueError):
        return False


def _parquet_dumps(df: Any) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, engine="pyarrow", compression="zstd", index=True)
    return buf.getvalue()


def _parquet_loads(data: bytes) -> Any:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _json_loads(data: bytes) -> Any:
    return json.loads(data)


def _png_dumps(fig: Any) -> bytes:
    buf = io.BytesIO()
    # No "Software"/date metadata, so the same figure always gives the same bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _png_loads(data: bytes) -> bytes:
    return data  # a PNG is kept as bytes: figures do not round-trip


def _joblib_dumps(obj: Any) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(obj, buf, compress=3)
    return buf.getvalue()


def _joblib_loads(data: bytes) -> Any:
    import joblib

    return joblib.load(io.BytesIO(data))  # only ever called after the hash check


_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "parquet": _parquet_dumps,
    "json": _json_dumps,
    "png": _png_dumps,
    "bytes": bytes,
    "joblib": _joblib_dumps,
}
_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "parquet": _parquet_loads,
    "json": _json_loads,
    "png": _png_loads,
    "bytes": bytes,
    "joblib": _joblib_loads,
}
