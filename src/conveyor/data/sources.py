"""Read the training table from where conveyor.yaml says: csv, parquet, sql, mongodb or a plugin.

Each ``data.source.type`` names a source in the :data:`conveyor._plugins.SOURCES` registry: the
built-ins below, or a :class:`SourceProtocol` another package registers in the entry point group
``conveyor.sources``.

Credentials come only from ``${VAR}`` references, expanded from the environment or a ``.env``
file in the project folder; they are masked in :func:`describe` and in every error message, and
driver exceptions are never chained (a traceback could print the URL they were built from).
"""

from __future__ import annotations

import codecs
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from conveyor import _plugins, _secrets
from conveyor.data import partitions
from conveyor.errors import ConveyorError, DataValidationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pandas as pd

    from conveyor.config import SourceConfig

__all__ = [
    "FILE_TYPES",
    "CsvSource",
    "MongoSource",
    "ParquetSource",
    "SourceProtocol",
    "SqlSource",
    "describe",
    "file_checksum",
    "iter_chunks",
    "load",
    "resolve_path",
    "source_for",
]

FILE_TYPES = ("csv", "parquet")
T = TypeVar("T")

_log = logging.getLogger(__name__)
_DELIMITERS = (";", "\t", "|")
_MAGIC = (
    (b"PAR1", "a parquet file (set type: parquet)"),
    (b"PK\x03\x04", "a zip archive or Excel workbook"),
    (b"\x1f\x8b", "gzip data (name it .csv.gz or set data.source.options.compression: gzip)"),
    (b"\xff\xfe", "UTF-16 text (set data.source.options.encoding: utf-16)"),
    (b"\xfe\xff", "UTF-16 text (set data.source.options.encoding: utf-16)"),
)
_MONGO_OPTIONS = ("filter", "projection", "limit")
_EXTRAS = " (cloud URIs need an extra: pip install 'conveyor[s3]', '[gcs]' or '[azure]')"
_OPTIONS = " (check data.source.options.storage_options and the credentials they name)"
_STREAMING = ("chunksize", "iterator")


def resolve_path(path: str, base_dir: Path) -> str:
    """A local path relative to the project folder becomes absolute; URIs stay as they are."""
    if "://" in path:
        return path
    return str((base_dir / Path(path).expanduser()).resolve())


class SourceProtocol(Protocol):
    """What a data source implements; a plugin may also define
    ``checksum(source, base_dir) -> str | None`` (a fingerprint of the data that changes when it
    changes: the ingest step is then cached, otherwise it always runs).

    ``source`` is the ``data.source`` section; plugin settings are in ``source.options``.
    """

    def load(self, source: SourceConfig, base_dir: Path) -> pd.DataFrame:
        """The whole table; raise :class:`~conveyor.errors.DataValidationError` when it cannot
        be read, naming what is wrong (never a credential)."""

    def describe(self, source: SourceConfig, base_dir: Path) -> str:
        """A credential-free description of the source, for lineage and messages."""


def source_for(kind: str) -> SourceProtocol:
    """The source registered as ``kind`` (``csv``, ``parquet``, ``sql``, ``mongodb``, a plugin).

    Raises:
        ConfigError: unknown kind (listing the available ones), or a broken plugin.
    """
    return _plugins.load(_plugins.SOURCES, kind, _make_source)


def describe(source: SourceConfig, base_dir: Path) -> str:
    """A credential-free description of the source, for lineage and messages."""
    plugin = source_for(source.type)
    if _builtin(source):
        return plugin.describe(source, base_dir)
    return str(_call_plugin(source, plugin.describe, base_dir))


def file_checksum(source: SourceConfig, base_dir: Path) -> str | None:
    """SHA-256 of a file source's bytes (None for databases): changes when the data changes.

    A parquet dataset folder hashes every file in it, with its relative name. A plugin source
    answers through its optional ``checksum`` method (None without one).

    Raises:
        DataValidationError: the file is missing or unreadable; names the file.
    """
    checksum = getattr(source_for(source.type), "checksum", None)
    if checksum is None:
        return None
    if _builtin(source):
        return cast("str | None", checksum(source, base_dir))
    value = _call_plugin(source, checksum, base_dir)
    return None if value is None else str(value)


def load(source: SourceConfig, base_dir: Path) -> pd.DataFrame:
    """Read the whole source into a DataFrame.

    ``source.options`` go to ``pandas.read_csv`` / ``read_parquet`` / ``read_sql`` (with
    ``storage_options`` also used for fsspec URIs); for mongodb they are ``filter``,
    ``projection`` (``_id`` is excluded unless asked for) and ``limit``; a plugin source reads
    them as it documents.

    Raises:
        ConfigError: ``source.type`` is not a known source, or its plugin is broken.
        DataValidationError: the source is missing, empty, unreadable or misconfigured, or a
            ``${VAR}`` is unset; names the file or database, never a credential.
    """
    import pandas as pd

    plugin = source_for(source.type)
    if _builtin(source):
        for key in _STREAMING:
            if key in source.options:
                raise DataValidationError(
                    f"data.source.options.{key}: not supported, conveyor reads the whole source"
                )
        return plugin.load(source, base_dir)
    frame = _call_plugin(source, plugin.load, base_dir)
    if not isinstance(frame, pd.DataFrame):
        raise DataValidationError(
            f"data.source: the {source.type} source returned {type(frame).__name__}, "
            "not a pandas DataFrame"
        )
    return frame


class _FileSource:
    """A csv or parquet file, folder or fsspec URI (``data.source.path``)."""

    def load(self, source: SourceConfig, base_dir: Path) -> pd.DataFrame:
        return _load_file(source, base_dir)

    def describe(self, source: SourceConfig, base_dir: Path) -> str:
        path = _secrets.expand_or_keep(source.path, "data.source.path", base_dir)
        return f"{source.type}:{_secrets.mask_uri(resolve_path(path, base_dir))}"

    def checksum(self, source: SourceConfig, base_dir: Path) -> str:
        return _file_checksum(source, base_dir)


class CsvSource(_FileSource):
    """``type: csv``: read with ``pandas.read_csv``."""


class ParquetSource(_FileSource):
    """``type: parquet``: a file or a dataset folder, read with ``pandas.read_parquet``."""


class SqlSource:
    """``type: sql``: a ``query`` or a ``table`` at a SQLAlchemy ``url``."""

    def load(self, source: SourceConfig, base_dir: Path) -> pd.DataFrame:
        return _load_sql(source, base_dir)

    def describe(self, source: SourceConfig, base_dir: Path) -> str:
        url = _secrets.expand_or_keep(source.url, "data.source.url", base_dir)
        return f"sql:{_secrets.mask_url(url)}:{source.table or 'query'}"


class MongoSource:
    """``type: mongodb``: a ``collection`` of a ``database`` at a MongoDB ``uri``."""

    def load(self, source: SourceConfig, base_dir: Path) -> pd.DataFrame:
        return _load_mongodb(source, base_dir)

    def describe(self, source: SourceConfig, base_dir: Path) -> str:
        uri = _secrets.expand_or_keep(source.uri, "data.source.uri", base_dir)
        return f"mongodb:{_secrets.mask_url(uri)}:{source.database}.{source.collection}"


def _make_source(obj: Any) -> SourceProtocol:
    """What a ``conveyor.sources`` entry point names -> a source (a class is instantiated)."""
    plugin = obj() if isinstance(obj, type) else obj
    for method in ("load", "describe"):
        if not callable(getattr(plugin, method, None)):
            raise TypeError(f"{type(plugin).__qualname__} has no {method}() method")
    return cast("SourceProtocol", plugin)


def _builtin(source: SourceConfig) -> bool:
    return source.type in _plugins.SOURCES.builtins


def _call_plugin(source: SourceConfig, method: Any, base_dir: Path) -> Any:
    """Call a plugin's method; what it raises becomes a DataValidationError naming the source.

    Like driver errors, a plugin's exception is not chained: its message may hold a credential.
    """
    try:
        return method(source, base_dir)
    except ConveyorError:
        raise
    except Exception as exc:  # a plugin may raise anything
        _log.debug("the %s source failed", source.type, exc_info=True)
        problem = f"{type(exc).__name__}: {exc}"
    raise DataValidationError(f"data.source (type {source.type}): {problem}") from None


# --- files ----------------------------------------------------------------------------------


def _load_file(source: SourceConfig, base_dir: Path) -> pd.DataFrame:
    import pandas as pd

    path, storage, secrets = _file_target(source, base_dir)
    if partitions.is_multi_file(path):  # a glob: its files in order, as one table
        files = partitions.list_files(source, base_dir)
        return pd.concat([files.read(i) for i in range(len(files))], ignore_index=True)
    name = _secrets.mask_uri(path)
    fs, fs_path = _filesystem(path, storage, name, secrets)
    info = _stat(fs, fs_path, name, secrets)
    if info.get("type") == "directory" and source.type == "csv":
        raise _secrets.error(name, "is a directory, not a csv file (data.source.path)", secrets)
    if info.get("type") != "directory" and info.get("size") == 0:
        raise _secrets.error(name, "is empty (0 bytes)", secrets)
    options = {k: v for k, v in source.options.items() if k != "storage_options"}
    if "://" in path and storage:
        options["storage_options"] = storage
    error: DataValidationError | None = None
    try:
        if source.type == "csv":
            frame: pd.DataFrame = pd.read_csv(path, **options)
        else:
            frame = pd.read_parquet(path, **options)
    except Exception as exc:  # pandas, pyarrow and fsspec raise many types; all mean "unreadable"
        error = _file_error(exc, source.type, name, fs, fs_path, options, secrets)
    if error is not None:
        raise error from None
    if source.type == "csv" and frame.shape[1] == 1 and not {"sep", "delimiter"} & set(options):
        hint = _delimiter_hint(str(frame.columns[0]))
        if hint:
            raise _secrets.error(name, f"parsed into a single column{hint}", secrets)
    return frame


def _file_checksum(source: SourceConfig, base_dir: Path) -> str:
    path, storage, secrets = _file_target(source, base_dir)
    name = _secrets.mask_uri(path)
    if partitions.is_multi_file(path):  # a glob: every matching file, with its name
        files = partitions.list_files(source, base_dir)
        digest = hashlib.sha256()
        fs, _ = _filesystem(path, storage, name, secrets)
        for file in files.files:
            digest.update(f"{file}\0".encode())
            _hash_into(digest, fs, file)
        return digest.hexdigest()
    fs, fs_path = _filesystem(path, storage, name, secrets)
    info = _stat(fs, fs_path, name, secrets)
    digest = hashlib.sha256()
    error: DataValidationError | None = None
    try:
        if info.get("type") == "directory":
            root = fs_path.rstrip("/")
            for file in sorted(fs.find(fs_path)):
                digest.update(f"{file[len(root) :]}\0".encode())
                _hash_into(digest, fs, file)
        else:
            _hash_into(digest, fs, fs_path)
    except Exception as exc:  # any backend failure; the driver message may hold secrets
        error = _secrets.error(name, f"cannot read: {type(exc).__name__}: {exc}", secrets)
    if error is not None:
        raise error from None
    return digest.hexdigest()


def iter_chunks(
    source: SourceConfig, base_dir: Path, *, rows: int
) -> tuple[int | None, Iterator[pd.DataFrame]]:
    """A csv or parquet file in chunks of about ``rows`` rows, for bounded-memory scoring.

    Returns the row count when the format records it (parquet), and the chunks. The file is
    checked first (exists, not empty), with the same messages as :func:`load`.

    Raises:
        DataValidationError: the file is missing, empty or unreadable, naming it.
    """
    if source.type not in FILE_TYPES:
        raise DataValidationError(f"chunked reading needs a csv or parquet file, not {source.type}")
    path, storage, secrets = _file_target(source, base_dir)
    name = _secrets.mask_uri(path)
    fs, fs_path = _filesystem(path, storage, name, secrets)
    info = _stat(fs, fs_path, name, secrets)
    if info.get("size") == 0:
        raise _secrets.error(name, "is empty (0 bytes)", secrets)
    options = {k: v for k, v in source.options.items() if k != "storage_options"}
    total: int | None = None
    if source.type == "parquet":
        import pyarrow.parquet as pq

        try:
            total = pq.ParquetFile(fs.open(fs_path, "rb")).metadata.num_rows
        except Exception as exc:  # not parquet, truncated
            raise _file_error(exc, "parquet", name, fs, fs_path, options, secrets) from None

    def chunks() -> Iterator[pd.DataFrame]:
        import pandas as pd

        error: DataValidationError | None = None
        try:
            with fs.open(fs_path, "rb") as fh:
                if source.type == "parquet":
                    import pyarrow.parquet as pq

                    for batch in pq.ParquetFile(fh).iter_batches(batch_size=rows):
                        yield batch.to_pandas()
                else:
                    yield from pd.read_csv(fh, chunksize=rows, **options)
        except DataValidationError:
            raise
        except Exception as exc:  # pandas, pyarrow and fsspec raise many types
            error = _file_error(exc, source.type, name, fs, fs_path, options, secrets)
        if error is not None:
            raise error from None

    return total, chunks()


def _file_target(source: SourceConfig, base_dir: Path) -> tuple[str, dict[str, Any], list[str]]:
    """The expanded path, expanded storage_options, and the secrets to keep out of messages."""
    raw = _required(source.path, "data.source.path")
    path = resolve_path(_secrets.expand(raw, "data.source.path", base_dir), base_dir)
    storage = source.options.get("storage_options") or {}
    if not isinstance(storage, dict):
        raise DataValidationError("data.source.options.storage_options: expected a mapping")
    storage = _secrets.expand_tree(storage, "data.source.options.storage_options", base_dir)
    secrets = _secrets.secrets(path, include_whole=False)
    # Imported here, not at the top: the store package costs ~0.1 s to import (commands that
    # only describe a source never need it).
    from conveyor.store.artifacts._filesystems import credentials

    secrets += credentials(storage)
    return path, storage, secrets


def _filesystem(
    path: str, storage: dict[str, Any], name: str, secrets: list[str]
) -> tuple[Any, str]:
    """The fsspec filesystem for ``path``, opened as the artifact store opens its own (object
    stores without a listing cache, gcsfs without its 60 s bucket probe)."""
    from conveyor.store.artifacts._filesystems import first_line, open_filesystem

    error: DataValidationError | None = None
    try:
        fs, fs_path = open_filesystem(path, storage)
    except ImportError as exc:
        error = _secrets.error(name, f"{exc}{_EXTRAS}", secrets)
    except Exception as exc:  # unknown protocol, bad storage_options or credentials
        error = _secrets.error(name, f"cannot open: {first_line(exc)}{_OPTIONS}", secrets)
    if error is not None:
        raise error from None
    return fs, fs_path


def _stat(fs: Any, fs_path: str, name: str, secrets: list[str]) -> dict[str, Any]:
    from conveyor.store.artifacts._filesystems import first_line

    error: DataValidationError | None = None
    try:
        info: dict[str, Any] = fs.info(fs_path)
    except FileNotFoundError:
        error = _secrets.error(name, "data file not found (data.source.path)", secrets)
    except Exception as exc:  # permissions, network, credentials, a missing bucket
        error = _secrets.error(name, f"cannot access: {first_line(exc)}{_OPTIONS}", secrets)
    if error is not None:
        raise error from None
    return info


def _hash_into(digest: Any, fs: Any, fs_path: str) -> None:
    with fs.open(fs_path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)


def _file_error(
    exc: Exception,
    kind: str,
    name: str,
    fs: Any,
    fs_path: str,
    options: dict[str, Any],
    secrets: list[str],
) -> DataValidationError:
    """Translate what pandas/pyarrow/fsspec raised into a message naming the file and problem."""
    import pandas as pd

    head = _head(fs, fs_path)
    binary = _binary_kind(head) if kind == "csv" and "encoding" not in options else None
    if isinstance(exc, FileNotFoundError):
        message = "data file not found (data.source.path)"
    elif isinstance(exc, TypeError):
        message = f"data.source.options do not fit pandas.read_{kind}: {exc}"
    elif binary:
        message = f"cannot read as csv: it looks like {binary}, not text"
    elif isinstance(exc, UnicodeDecodeError):
        message = _decode_problem(exc, fs, fs_path, str(options.get("encoding") or "utf-8"))
    elif isinstance(exc, LookupError):  # unknown codec name
        message = f"data.source.options.encoding: {exc}"
    elif isinstance(exc, pd.errors.EmptyDataError):
        message = "is empty: no header row to parse"
    elif isinstance(exc, ImportError):
        message = str(exc)
    else:
        message = f"cannot read as {kind}: {type(exc).__name__}: {str(exc).strip()}"
        if kind == "csv" and "sep" not in options and "delimiter" not in options:
            message += _delimiter_hint(head.split(b"\n", 1)[0].decode("utf-8", "replace"))
        elif kind == "parquet" and head and _binary_kind(head) is None and _is_text(head):
            message += " (it looks like a text file: set type: csv?)"
    return _secrets.error(name, message, secrets)


def _head(fs: Any, fs_path: str, size: int = 8192) -> bytes:
    """The first bytes of the (decompressed) file, or b"" when it cannot be read."""
    try:
        with fs.open(fs_path, "rb", compression="infer") as fh:
            data: bytes = fh.read(size)
    except Exception:  # only a hint for the message: the real error is reported anyway
        return b""
    return data


def _binary_kind(head: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return "binary data" if b"\0" in head else None


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a multi-byte character cut by the sample
    return True


def _decode_problem(exc: UnicodeDecodeError, fs: Any, fs_path: str, encoding: str) -> str:
    # pandas reports a position inside its current buffer; find the offset in the file instead.
    where = f"{exc.reason}"
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
        offset = 0
        with fs.open(fs_path, "rb", compression="infer") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as bad:
                    at = offset - pending + bad.start
                    where = f"byte 0x{bad.object[bad.start]:02x} at offset {at}"
                    break
                offset += len(chunk)
    except Exception:  # keep pandas' reason when the file cannot be re-read
        _log.debug("cannot locate the undecodable byte in %s", fs_path, exc_info=True)
    return (
        f"not valid {encoding} text: {where}; set data.source.options.encoding "
        "to the file's encoding (e.g. latin-1 or cp1252)"
    )


def _delimiter_hint(header: str) -> str:
    counts = {d: header.count(d) for d in _DELIMITERS if d in header}
    if not counts:
        return ""
    sep = max(counts, key=lambda d: counts[d]).replace("\t", "\\t")
    return (
        f"; the header contains '{sep}', so the delimiter is probably wrong: "
        f'set data.source.options: {{sep: "{sep}"}}'
    )


# --- databases ------------------------------------------------------------------------------


def _load_sql(source: SourceConfig, base_dir: Path) -> pd.DataFrame:
    import pandas as pd
    from sqlalchemy import text

    url = sql_url(source, base_dir)
    options = dict(source.options)

    def read(conn: Any) -> Any:
        if source.query:
            return pd.read_sql(text(source.query), conn, **options)
        schema, _, table = (source.table or "").rpartition(".")
        return pd.read_sql_table(table, conn, schema=schema or None, **options)

    frame: pd.DataFrame = run_sql(url, read, table=source.table)
    return frame


def sql_url(source: SourceConfig, base_dir: Path) -> str:
    """The sql source's URL with its ``${VAR}`` expanded, checked (never shown unmasked).

    Raises:
        DataValidationError: no url, not exactly one of query/table, a password SQLAlchemy
            would misread, an unset variable.
    """
    template = _required(source.url, "data.source.url")
    _secrets.warn_literal_password(template, "data.source.url")
    url = _secrets.expand(template, "data.source.url", base_dir)
    if bool(source.query) == bool(source.table):
        raise DataValidationError("data.source: a sql source needs exactly one of query or table")
    if "@" in (_secrets.password(url) or ""):  # SQLAlchemy would cut it and put a piece in the host
        raise DataValidationError(
            f"sql:{_secrets.mask_url(url)}: cannot tell the password from the host; "
            "percent-encode its special characters (@ as %40, : as %3A, / as %2F)"
        )
    return url


def run_sql(url: str, read: Callable[[Any], T], *, table: str | None = None) -> T:
    """``read(connection)`` on a fresh connection to ``url``; what the driver raises becomes a
    DataValidationError naming the database with the password masked (never chained)."""
    from sqlalchemy import NullPool, create_engine

    name = f"sql:{_secrets.mask_url(url)}"
    secrets = _secrets.secrets(url)
    error: DataValidationError | None = None
    try:
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                result = read(conn)
        finally:
            engine.dispose()
    except ImportError as exc:
        error = _secrets.error(
            name,
            f"the database driver is not installed ({exc})"
            + ("; pip install 'conveyor[postgres]'" if url.startswith("postgres") else ""),
            secrets,
        )
    except ValueError as exc:
        problem = f"{type(exc).__name__}: {exc}"
        if table and "not found" in str(exc):
            problem = f"table {table!r} not found (data.source.table)"
        error = _secrets.error(name, problem, secrets)
    except Exception as exc:  # driver errors carry connection details: mask, do not chain
        error = _secrets.error(name, f"{type(exc).__name__}: {exc}", secrets)
    if error is not None:
        raise error from None
    return result


def _load_mongodb(source: SourceConfig, base_dir: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        import pymongo
    except ImportError:
        missing = True
    else:
        missing = False
    if missing:
        raise DataValidationError(
            "data.source: a mongodb source needs pymongo: pip install 'conveyor[mongo]'"
        )
    template = _required(source.uri, "data.source.uri")
    _secrets.warn_literal_password(template, "data.source.uri")
    uri = _secrets.expand(template, "data.source.uri", base_dir)
    database = _required(source.database, "data.source.database")
    collection = _required(source.collection, "data.source.collection")
    query, projection, limit = _mongo_options(source.options)
    name = f"mongodb:{_secrets.mask_url(uri)}:{database}.{collection}"
    secrets = _secrets.secrets(uri)
    error: DataValidationError | None = None
    try:
        client: Any = pymongo.MongoClient(uri)
        try:
            docs = list(client[database][collection].find(query, projection, limit=limit))
        finally:
            client.close()
    except Exception as exc:  # driver errors carry connection details: mask, do not chain
        error = _secrets.error(name, f"{type(exc).__name__}: {exc}", secrets)
    if error is not None:
        raise error from None
    # Nested documents become dotted columns (address.city), as a training table needs.
    frame: pd.DataFrame = pd.json_normalize(docs)
    return frame


def _mongo_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
    unknown = sorted(set(options) - set(_MONGO_OPTIONS))
    if unknown:
        raise DataValidationError(
            f"data.source.options: unknown key(s) {unknown} for a mongodb source; "
            f"expected {', '.join(_MONGO_OPTIONS)}"
        )
    query = options.get("filter") or {}
    if not isinstance(query, dict):
        raise DataValidationError("data.source.options.filter: expected a mapping")
    raw = options.get("projection") or {}
    if isinstance(raw, list):
        raw = dict.fromkeys(raw, True)
    if not isinstance(raw, dict):
        raise DataValidationError(
            "data.source.options.projection: expected a mapping or a list of fields"
        )
    projection = {"_id": False, **raw}
    limit = options.get("limit") or 0
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise DataValidationError("data.source.options.limit: expected a non-negative integer")
    return query, projection, limit


# --- helpers ----------------------------------------------------------------------------------


def _required(value: str | None, key: str) -> str:
    if not value:
        raise DataValidationError(f"{key} is required for this source type")
    return value
