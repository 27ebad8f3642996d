"""Serializers chosen by type: a typed stage output (:mod:`conveyor.contracts`) -> its JSON,
DataFrame -> Parquet, dict/list -> JSON, figure -> PNG, else joblib.

Every serializer is deterministic: the same object gives the same bytes, so the same step output
gets the same artifact address on every run and every executor. Serializers are found by kind in
the :data:`conveyor._plugins.SERIALIZERS` registry: the built-ins below, or a
:class:`SerializerProtocol` another package registers in the entry point group
``conveyor.serializers`` (tried for values no specific built-in takes, before joblib).
"""

from __future__ import annotations

import functools
import io
import json
from typing import Any, Protocol, cast

from conveyor import _plugins
from conveyor.contracts import Contract, contract_for
from conveyor.errors import SerializationError

__all__ = [
    "KINDS",
    "BytesSerializer",
    "JoblibSerializer",
    "JsonSerializer",
    "ParquetSerializer",
    "PngSerializer",
    "SerializerProtocol",
    "deserialize",
    "kind_of",
    "serialize",
]

KINDS = tuple(_plugins.SERIALIZERS.builtins)
_SPECIFIC = ("parquet", "png", "bytes", "json")  # tried in this order, before any plugin
_FALLBACK = "joblib"  # anything picklable that nothing else handles


class SerializerProtocol(Protocol):
    """What a serializer implements; its registered name is the artifact kind it writes.

    ``dump`` must be deterministic (the same value gives the same bytes): the bytes' SHA-256 is
    the artifact's address, so a step's output keeps its address on every run and executor.
    """

    def handles(self, value: Any) -> bool:
        """Whether this serializer should write ``value``."""

    def dump(self, value: Any) -> bytes:
        """Encode ``value``."""

    def load(self, data: bytes) -> Any:
        """Decode bytes written by :meth:`dump`."""


class ParquetSerializer:
    """A pandas DataFrame, as zstd-compressed Parquet (index kept)."""

    def handles(self, value: Any) -> bool:
        kind = type(value)
        return kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame"

    def dump(self, value: Any) -> bytes:
        buf = io.BytesIO()
        value.to_parquet(buf, engine="pyarrow", compression="zstd", index=True)
        return buf.getvalue()

    def load(self, data: bytes) -> Any:
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")


class JsonSerializer:
    """Plain data that JSON gives back unchanged, as canonical (sorted, compact) JSON."""

    def handles(self, value: Any) -> bool:
        if isinstance(value, dict | list | str | int | float | bool) or value is None:
            return _is_json(value)
        return False

    def dump(self, value: Any) -> bytes:
        return _json_dumps(value)

    def load(self, data: bytes) -> Any:
        return json.loads(data)


class PngSerializer:
    """A matplotlib figure, as PNG; it loads back as the PNG's bytes (figures do not
    round-trip)."""

    def handles(self, value: Any) -> bool:
        return type(value).__module__.startswith("matplotlib") and hasattr(value, "savefig")

    def dump(self, value: Any) -> bytes:
        buf = io.BytesIO()
        # No "Software"/date metadata, so the same figure always gives the same bytes.
        value.savefig(buf, format="png", metadata={"Software": None})
        return buf.getvalue()

    def load(self, data: bytes) -> Any:
        return data


class BytesSerializer:
    """Bytes stored as they are (e.g. an HTML report)."""

    def handles(self, value: Any) -> bool:
        return isinstance(value, bytes | bytearray)

    def dump(self, value: Any) -> bytes:
        return bytes(value)

    def load(self, data: bytes) -> Any:
        return bytes(data)


class JoblibSerializer:
    """Anything picklable (estimators, pipelines), compressed joblib."""

    def handles(self, value: Any) -> bool:
        return True

    def dump(self, value: Any) -> bytes:
        from joblib.numpy_pickle import _write_fileobject

        buf = io.BytesIO()
        with _write_fileobject(buf, compress=("zlib", 3)) as f:  # as joblib.dump(compress=3)
            _canonical_pickler()(f).dump(value)
        return buf.getvalue()

    def load(self, data: bytes) -> Any:
        import joblib

        return joblib.load(io.BytesIO(data))  # only ever called after the hash check


@functools.cache
def _canonical_pickler() -> type:
    """joblib's pickler, writing each distinct string once, referenced after.

    pickle shares what is the same object in memory; whether two equal strings are one object
    depends on the process's history (an estimator trained in a long run, or loaded from the
    store in a fresh one). Content addressing needs the same value to give the same bytes
    wherever it was made: an orchestrated step and a whole run must agree on a model's digest.
    """
    from joblib.numpy_pickle import NumpyPickler

    class CanonicalPickler(NumpyPickler):  # type: ignore[misc]
        dispatch = NumpyPickler.dispatch.copy()

        def __init__(self, fp: Any) -> None:
            super().__init__(fp)
            self._strings: dict[str, str] = {}

        def save_str(self, obj: str) -> None:
            first = self._strings.setdefault(obj, obj)
            if first is not obj and id(first) in self.memo:
                self.write(self.get(self.memo[id(first)][0]))
                return
            NumpyPickler.dispatch[str](self, obj)

        dispatch[str] = save_str

    return CanonicalPickler


def kind_of(obj: Any) -> str:
    """The serializer kind conveyor picks for ``obj``: a contract's own kind, a specific
    built-in (parquet, png, bytes, json), else the first plugin (by name) that handles it, else
    joblib.

    Raises:
        SerializationError: a plugin's ``handles`` failed.
        ConfigError: a serializer plugin is broken.
    """
    if isinstance(obj, Contract):
        return obj.KIND
    for kind in _SPECIFIC:
        if _serializer(kind).handles(obj):
            return kind
    for kind in _plugins.names(_plugins.SERIALIZERS)[len(KINDS) :]:
        try:
            wanted = bool(_serializer(kind).handles(obj))
        except Exception as exc:  # a plugin may raise anything
            raise SerializationError(f"serializer {kind!r}: handles() failed: {exc}") from exc
        if wanted:
            return kind
    return _FALLBACK


def serialize(obj: Any) -> tuple[str, bytes]:
    """Encode ``obj`` and return ``(kind, bytes)``.

    Raises:
        SerializationError: the object cannot be encoded (e.g. it is not picklable).
    """
    if isinstance(obj, Contract):
        return obj.KIND, obj.to_bytes()
    kind = kind_of(obj)
    if kind == "parquet":
        try:
            return kind, _serializer(kind).dump(obj)
        except (OverflowError, TypeError, ValueError, ImportError):
            # e.g. an object column of Python ints beyond int64 (raw data before validation):
            # keep the frame exactly as it is, as joblib, rather than fail the step
            kind = _FALLBACK
    try:
        data = _serializer(kind).dump(obj)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize {type(obj).__qualname__} as {kind}: {exc}"
        ) from exc
    if not isinstance(data, bytes):
        raise SerializationError(f"serializer {kind!r} returned {type(data).__name__}, not bytes")
    return kind, data


def deserialize(kind: str, data: bytes) -> Any:
    """Decode bytes written by :func:`serialize` as ``kind``.

    Raises:
        SerializationError: unknown kind, or the bytes do not decode.
        ConfigError: the kind's serializer plugin is broken.
    """
    contract = contract_for(kind)
    if contract is not None:
        try:
            return contract.model_validate_json(data)
        except ValueError as exc:
            raise SerializationError(f"cannot decode {kind} artifact: {exc}") from exc
    if not _plugins.is_known(_plugins.SERIALIZERS, kind):
        known = ", ".join(_plugins.names(_plugins.SERIALIZERS))
        raise SerializationError(f"unknown artifact kind {kind!r}; known: {known}")
    serializer = _serializer(kind)
    try:
        return serializer.load(data)
    except Exception as exc:
        raise SerializationError(f"cannot decode {kind} artifact: {exc}") from exc


def _serializer(kind: str) -> SerializerProtocol:
    return _plugins.load(_plugins.SERIALIZERS, kind, _make_serializer)


def _make_serializer(obj: Any) -> SerializerProtocol:
    """What a ``conveyor.serializers`` entry point names -> a serializer (a class is
    instantiated)."""
    plugin = obj() if isinstance(obj, type) else obj
    for method in ("handles", "dump", "load"):
        if not callable(getattr(plugin, method, None)):
            raise TypeError(f"{type(plugin).__qualname__} has no {method}() method")
    return cast("SerializerProtocol", plugin)


def _is_json(obj: Any) -> bool:
    # JSON only if it gives the object back: int keys would come back as str, tuples as lists,
    # and keys of mixed types cannot be sorted into canonical bytes at all.
    try:
        return bool(json.loads(_json_dumps(obj)) == obj)
    except (TypeError, ValueError):
        return False


def _json_dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
