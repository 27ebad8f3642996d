"""Tables kept as partitions: a source's files listed and read one at a time, and tables stored
as Parquet partitions in the artifact store (:class:`~conveyor.contracts.PartitionedTable`).

A csv or parquet source whose ``path`` is a folder or a glob (``data/part-*.parquet``,
``s3://bucket/visa/*.csv``) has one partition per file, in sorted path order. Parquet files are
read with the schema unified over every file's footer, so a column that one file lacks or types
differently comes back with the table's type. Partition work runs through :func:`run_tasks`: as
Dask tasks when the caller is itself a task on a Dask worker (the ``dask`` executor), else on a
thread pool; results come back in partition order with at most a few partitions in flight, so
no process ever holds the whole table.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor import _secrets
from conveyor.contracts import PartitionedTable, TablePart
from conveyor.errors import DataValidationError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from pathlib import Path

    import pandas as pd

    from conveyor.config import SourceConfig

__all__ = [
    "SourceFiles",
    "SqlRanges",
    "common_dtypes",
    "is_multi_file",
    "list_files",
    "load_part",
    "of_source",
    "run_tasks",
    "sql_ranges",
    "store_part",
    "to_dask",
]

T = TypeVar("T")
R = TypeVar("R")
_GLOB = ("*", "?", "[")
_SUFFIXES = {"csv": (".csv", ".csv.gz", ".tsv", ".txt"), "parquet": (".parquet", ".pq")}
_log = logging.getLogger(__name__)
_MEMO_VERSION = 1  # bump when what a partition's memo holds changes


def is_multi_file(path: str) -> bool:
    """The path names several files: a glob (a folder is only known after looking)."""
    return any(c in path for c in _GLOB)


@dataclass
class SourceFiles:
    """The files of a csv or parquet source, in order; picklable, so tasks can read them."""

    kind: str
    root: str  # the source path as configured (masked of credentials in messages)
    files: list[str]  # filesystem paths, sorted
    storage: dict[str, Any]
    options: dict[str, Any]
    secrets: list[str] = field(default_factory=list, repr=False)
    schema: Any = None  # parquet: the pyarrow schema unified over every file's footer

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> pd.DataFrame:
        """Partition ``index`` as a DataFrame (parquet: in the unified schema).

        Raises:
            DataValidationError: the file cannot be read; names it.
        """
        return self.parse(index, self.read_bytes(index))

    def read_bytes(self, index: int) -> bytes:
        """The bytes of file ``index``, as stored (compressed csv stays compressed).

        Raises:
            DataValidationError: the file cannot be read; names it.
        """
        fs = self._fs()
        error: DataValidationError | None = None
        try:
            data: bytes = fs.cat_file(self.files[index])
        except Exception as exc:  # fsspec backends raise many types
            error = _secrets.error(
                self.file_name(index), f"cannot read: {type(exc).__name__}: {exc}", self.secrets
            )
        if error is not None:
            raise error from None
        return data

    def parse(self, index: int, data: bytes) -> pd.DataFrame:
        """File ``index``'s ``data`` as a DataFrame (parquet: in the unified schema).

        Raises:
            DataValidationError: the bytes do not parse; names the file.
        """
        import io

        import pandas as pd
        from fsspec.utils import infer_compression

        from conveyor.data.sources import _file_error

        path = self.files[index]
        error: DataValidationError | None = None
        try:
            if self.kind == "parquet":
                frame = _parquet_frame(data, self.schema)
            else:
                compression = self.options.get("compression", infer_compression(path))
                options = {k: v for k, v in self.options.items() if k != "compression"}
                frame = pd.read_csv(io.BytesIO(data), compression=compression, **options)
        except Exception as exc:  # pandas and pyarrow raise many types
            fs = self._fs()
            error = _file_error(exc, self.kind, self.file_name(index), fs, path, {}, self.secrets)
        if error is not None:
            raise error from None
        return frame

    def memo_key(self, data: bytes) -> str:
        """What a file's partition is computed from: its bytes and how they are read."""
        from conveyor._version import __version__

        recipe = json.dumps(
            [_MEMO_VERSION, __version__, self.kind, self.options, str(self.schema)],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(recipe.encode() + b"\0" + hashlib.sha256(data).digest()).hexdigest()

    def _fs(self) -> Any:
        from conveyor.data.sources import _filesystem

        fs, _ = _filesystem(self.root, self.storage, self.name, self.secrets)
        return fs

    @property
    def name(self) -> str:
        """The source, masked for messages."""
        return _secrets.mask_uri(self.root)

    def file_name(self, index: int) -> str:
        """File ``index`` as shown in messages (with its protocol, credentials masked)."""
        path = self.files[index]
        if "://" in self.root and "://" not in path:
            path = f"{self.root.split('://', 1)[0]}://{path}"
        return _secrets.mask_uri(path)


def list_files(source: SourceConfig, base_dir: Path) -> SourceFiles:
    """The files of a csv/parquet source: one for a file, every matching file of a folder or
    glob (sorted), each a partition.

    Raises:
        DataValidationError: not a csv/parquet source, nothing matches, or a footer is
            unreadable; names the path.
    """
    from conveyor.data.sources import FILE_TYPES, _file_target, _filesystem

    if source.type not in FILE_TYPES:
        raise DataValidationError(
            f"data.source: partitioned reading needs a csv or parquet source, not {source.type}"
        )
    path, storage, secrets = _file_target(source, base_dir)
    name = _secrets.mask_uri(path)
    fs, fs_path = _filesystem(path, storage, name, secrets)
    error: DataValidationError | None = None
    try:
        files = _matching(fs, fs_path, source.type)
    except Exception as exc:  # network, permissions, credentials
        error = _secrets.error(name, f"cannot list: {type(exc).__name__}: {exc}", secrets)
    if error is not None:
        raise error from None
    if not files:
        wanted = " or ".join(_SUFFIXES[source.type])
        raise _secrets.error(name, f"no {wanted} files match (data.source.path)", secrets)
    options = {k: v for k, v in source.options.items() if k != "storage_options"}
    listing = SourceFiles(source.type, path, files, storage, options, secrets)
    if source.type == "parquet":
        listing.schema = _unified_schema(fs, listing)
    return listing


def _matching(fs: Any, fs_path: str, kind: str) -> list[str]:
    if is_multi_file(fs_path):
        found = [p for p in fs.glob(fs_path) if fs.isfile(p)]
    elif fs.isdir(fs_path):
        found = [
            p
            for p in fs.find(fs_path)
            if p.lower().endswith(_SUFFIXES[kind])
            and not any(part.startswith(("_", ".")) for part in p[len(fs_path) :].split("/"))
        ]
        hive = [p for p in found if "=" in p[len(fs_path) :].rsplit("/", 1)[0]]
        if hive:
            raise DataValidationError(
                f"{hive[0]}: hive-style folders (key=value) are not read as partitions yet; "
                "point data.source.path at the files (a glob) or load the table whole"
            )
    elif fs.exists(fs_path):
        found = [fs_path]
    else:
        found = []
    return sorted(found)


def _unified_schema(fs: Any, listing: SourceFiles) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = []
    for i, path in enumerate(listing.files):
        try:
            with fs.open(path, "rb") as fh:
                schemas.append(pq.read_schema(fh).remove_metadata())
        except Exception as exc:  # not parquet, truncated
            raise _secrets.error(
                listing.file_name(i),
                f"cannot read as parquet: {type(exc).__name__}: {exc}",
                listing.secrets,
            ) from None
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise _secrets.error(
            listing.name, f"the files' columns do not agree: {exc}", listing.secrets
        ) from None


def _parquet_frame(data: bytes, schema: Any) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(data))
    columns = []
    for fld in schema:
        if fld.name in table.column_names:
            columns.append(table.column(fld.name).cast(fld.type))
        else:
            columns.append(pa.nulls(table.num_rows, fld.type))
    frame: pd.DataFrame = pa.Table.from_arrays(columns, schema=schema).to_pandas()
    return frame


ROWS_PER_RANGE = 500_000


def of_source(source: SourceConfig, base_dir: Path) -> SourceFiles | SqlRanges:
    """The partitions of a source: its files (csv, parquet) or ranges of a sql table.

    Raises:
        DataValidationError: the source cannot be partitioned, or read; names it.
    """
    if source.type == "sql":
        return sql_ranges(source, base_dir)
    return list_files(source, base_dir)


@dataclass
class SqlRanges:
    """A sql table or query read in ranges of a numeric column, one query a range, each
    ordered by that column; rows whose column is NULL come with the first range."""

    url: str = field(repr=False)  # expanded: holds the password, never shown
    relation: str  # what to select from: a quoted table name, or the query as a subquery
    column: str  # quoted
    bounds: list[Any]  # ranges [bounds[i], bounds[i + 1]), the last one closed
    options: dict[str, Any]
    table: str | None = None

    def __len__(self) -> int:
        return len(self.bounds) - 1

    @property
    def name(self) -> str:
        """The source, masked for messages."""
        return f"sql:{_secrets.mask_url(self.url)}"

    def file_name(self, index: int) -> str:
        """Range ``index`` as shown in messages."""
        return f"{self.name} range {index} [{self.bounds[index]}, {self.bounds[index + 1]}]"

    def read(self, index: int) -> pd.DataFrame:
        """Range ``index`` as a DataFrame.

        Raises:
            DataValidationError: the query failed; names the database (password masked).
        """
        import pandas as pd
        from sqlalchemy import text

        from conveyor.data.sources import run_sql

        last = index == len(self) - 1
        where = f"{self.column} >= :low AND {self.column} {'<=' if last else '<'} :high"
        if index == 0:
            where = f"({where}) OR {self.column} IS NULL"
        sql = text(f"SELECT * FROM {self.relation} WHERE {where} ORDER BY {self.column}")
        params = {"low": self.bounds[index], "high": self.bounds[index + 1]}

        def read(conn: Any) -> Any:
            return pd.read_sql(sql, conn, params=params, **self.options)

        frame: pd.DataFrame = run_sql(self.url, read, table=self.table)
        return frame


def sql_ranges(source: SourceConfig, base_dir: Path) -> SqlRanges:
    """Split a sql source into ranges of ``partition_on`` (from its MIN, MAX and COUNT).

    Raises:
        DataValidationError: no ``partition_on``, a column that is not numeric, or the query
            failed; names the database (password masked).
    """
    from sqlalchemy import text

    from conveyor.data.sources import run_sql, sql_url

    url = sql_url(source, base_dir)
    if not source.partition_on:
        raise DataValidationError(
            "data.source.partition_on: a sql source read in partitions needs a numeric column "
            "to split into ranges (an id or a timestamp as a number)"
        )

    def bounds(conn: Any) -> tuple[str, str, Any, Any, int]:
        quote = conn.dialect.identifier_preparer.quote
        if source.table:
            relation = ".".join(quote(part) for part in source.table.split("."))
        else:
            relation = f"({source.query}) AS conveyor_source"
        column = quote(source.partition_on)
        row = conn.execute(
            text(f"SELECT MIN({column}), MAX({column}), COUNT(*) FROM {relation}")
        ).one()
        return relation, column, row[0], row[1], int(row[2])

    relation, column, low, high, rows = run_sql(url, bounds, table=source.table)
    if low is not None and not isinstance(low, int | float):
        raise DataValidationError(
            f"sql:{_secrets.mask_url(url)}: data.source.partition_on {source.partition_on!r} "
            f"holds {type(low).__name__} values; it needs a numeric column"
        )
    n = source.partitions or max(1, -(-rows // ROWS_PER_RANGE))
    if low is None:  # no rows, or the column is NULL everywhere: one range that reads them
        edges: list[Any] = [0, 0]
    elif isinstance(low, int) and isinstance(high, int):
        n = max(1, min(n, high - low + 1))
        edges = [low + (high - low + 1) * i // n for i in range(n)] + [high]
    else:
        edges = [low + (high - low) * i / n for i in range(n)] + [high]
    options = dict(source.options)
    return SqlRanges(url, relation, column, edges, options, source.table)


# --- tables in the artifact store ---------------------------------------------------------------


def common_dtypes(dtypes: Sequence[dict[str, str]]) -> dict[str, str]:
    """The dtype of each column once the partitions are one table, by pandas' own concat rules
    (``int64`` in one partition and ``float64`` in another -> ``float64``)."""
    import pandas as pd

    columns: dict[str, list[str]] = {}
    for part in dtypes:
        for name, dtype in part.items():
            columns.setdefault(name, []).append(dtype)
    out = {}
    for name, kinds in columns.items():
        unique = list(dict.fromkeys(kinds))
        if len(unique) == 1:
            out[name] = unique[0]
            continue
        probe = pd.concat(
            [pd.Series([None], dtype=k).iloc[:0] if k == "object" else _probe(k) for k in unique],
            ignore_index=True,
        )
        out[name] = str(probe.dtype)
    return out


def _probe(dtype: str) -> pd.Series:
    import pandas as pd

    return pd.Series([0], dtype=dtype) if dtype != "bool" else pd.Series([False])


def conform(frame: pd.DataFrame, columns: Sequence[str], dtypes: Sequence[str]) -> pd.DataFrame:
    """``frame`` with the table's column order and dtypes (a partition typed by its own rows,
    e.g. an int column without missing values in this partition, takes the table's type)."""
    frame = frame[list(columns)] if list(frame.columns) != list(columns) else frame
    wanted = dict(zip(columns, dtypes, strict=True))
    casts = {c: d for c, d in wanted.items() if str(frame[c].dtype) != d}
    return frame.astype(casts) if casts else frame


def store_part(store: Any, frame: pd.DataFrame) -> TablePart:
    """Write one partition to the artifact store (content-addressed, hash-verified)."""
    stored = store.put(frame.reset_index(drop=True))
    return TablePart(digest=stored.digest, rows=len(frame))


def load_part(store: Any, table: PartitionedTable, index: int) -> pd.DataFrame:
    """Partition ``index`` of ``table``, in the table's column order and dtypes."""
    frame: pd.DataFrame = store.get(table.parts[index].digest, "parquet")
    return conform(frame, table.columns, table.dtypes)


def to_dask(store: Any, table: PartitionedTable) -> Any:
    """``table`` as a ``dask.dataframe.DataFrame`` whose partitions load from ``store`` on the
    workers (the client never holds rows)."""
    import dask.dataframe as dd
    import pandas as pd

    meta = pd.DataFrame(
        {c: pd.Series(dtype=d) for c, d in zip(table.columns, table.dtypes, strict=True)}
    )
    return dd.from_map(
        _LoadPart(store, table), list(range(len(table.parts))), meta=meta, enforce_metadata=False
    )


@dataclass(frozen=True)
class _LoadPart:
    store: Any
    table: PartitionedTable

    def __call__(self, index: int) -> pd.DataFrame:
        return load_part(self.store, self.table, index)


# --- running partition work -----------------------------------------------------------------------


def run_tasks(
    fn: Callable[[T], R], items: Iterable[T], *, label: str = "partitions", window: int = 0
) -> Iterator[R]:
    """``fn`` over ``items``, results in order, at most ``window`` in flight (default: twice
    the workers), so results that are large are consumed as they come.

    On a Dask worker (a step sent by the ``dask`` executor) the calls are Dask tasks spread over
    the cluster; elsewhere they run on a thread pool of the machine's cores (pandas and pyarrow
    release the GIL for most of the work). A progress line is logged every tenth.
    """
    todo = list(items)
    if _on_dask_worker():
        yield from _run_on_dask(fn, todo, label, window)
        return
    workers = max(1, min(len(todo), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="conveyor-part") as pool:
        pending: deque[Any] = deque()
        step = max(1, len(todo) // 10)
        it = iter(todo)
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) >= (window or 2 * workers):
                break
        done = 0
        while pending:
            result = pending.popleft().result()
            for item in it:
                pending.append(pool.submit(fn, item))
                break
            done += 1
            if done % step == 0 or done == len(todo):
                _log.info("%s: %d/%d", label, done, len(todo))
            yield result


def _on_dask_worker() -> bool:
    try:
        from distributed import get_worker
    except ImportError:
        return False
    try:
        get_worker()
    except ValueError:  # not running inside a Dask task
        return False
    return True


def _run_on_dask(fn: Callable[[T], R], todo: list[T], label: str, window: int) -> Iterator[R]:
    from distributed import worker_client

    with worker_client() as client:
        limit = window or 2 * max(1, len(client.scheduler_info().get("workers", {})))
        futures: deque[Any] = deque()
        it = iter(todo)
        for item in it:
            futures.append(client.submit(fn, item, pure=False))
            if len(futures) >= limit:
                break
        done = 0
        step = max(1, len(todo) // 10)
        while futures:
            future = futures.popleft()
            result = future.result()
            future.release()
            for item in it:
                futures.append(client.submit(fn, item, pure=False))
                break
            done += 1
            if done % step == 0 or done == len(todo):
                _log.info("%s: %d/%d (dask)", label, done, len(todo))
            yield result
