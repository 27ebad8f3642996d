"""Read the training table from where conveyor.yaml says: csv, parquet, sql or mongodb."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.config import SourceConfig

FILE_TYPES = ("csv", "parquet")


def resolve_path(path: str, base_dir: Path) -> str:
    """A local path relative to the project folder becomes absolute; URIs stay as they are."""
    if "://" in path:
        return path
    return str((base_dir / path).resolve())


def describe(source: SourceConfig, base_dir: Path) -> str:
    """A credential-free description of the source, for lineage and messages."""
    if source.type in FILE_TYPES:
        return f"{source.type}:{resolve_path(source.path or '', base_dir)}"
    if source.type == "sql":
        from sqlalchemy import make_url

        url = make_url(_env(source.url, "data.source.url")).render_as_string(hide_password=True)
        return f"sql:{url}:{source.table or 'query'}"
    return f"mongodb:{source.database}.{source.collection}"


def file_checksum(source: SourceConfig, base_dir: Path) -> str | None:
    """SHA-256 of a file source's bytes (None for databases): changes when the data changes."""
    if source.type not in FILE_TYPES:
        return None
    import hashlib

    import fsspec

    path = resolve_path(_required(source.path, "data.source.path"), base_dir)
    digest = hashlib.sha256()
    try:
        with fsspec.open(path, "rb", **source.options.get("storage_options", {})) as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise DataValidationError(f"{path}: data file not found (data.source.path)") from None
    return digest.hexdigest()


def load(source: SourceConfig, base_dir: Path) -> pd.DataFrame:
    """Read the whole source into a DataFrame.

    Raises:
        DataValidationError: the file is missing, empty or unreadable; names the file.
    """
    import pandas as pd

    if source.type in FILE_TYPES:
        path = resolve_path(_required(source.path, "data.source.path"), base_dir)
        options = dict(source.options)
        try:
            if source.type == "csv":
                frame: pd.DataFrame = pd.read_csv(path, **options)
            else:
                frame = pd.read_parquet(path, **options)
            return frame
        except FileNotFoundError:
            raise DataValidationError(f"{path}: data file not found (data.source.path)") from None
        except (
            pd.errors.ParserError,
            pd.errors.EmptyDataError,
            UnicodeDecodeError,
            ValueError,
            OSError,
        ) as exc:
            raise DataValidationError(f"{path}: cannot read as {source.type}: {exc}") from exc
    if source.type == "sql":
        return _load_sql(source)
    return _load_mongodb(source)


def _load_sql(source: SourceConfig) -> pd.DataFrame:
    import pandas as pd
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    url = _env(source.url, "data.source.url")
    if not (source.query or source.table):
        raise DataValidationError("data.source: a sql source needs `query` or `table`")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if source.query:
                return pd.read_sql(text(source.query), conn)
            return pd.read_sql_table(source.table or "", conn)
    except (SQLAlchemyError, ValueError) as exc:
        raise DataValidationError(f"{describe(source, Path())}: {type(exc).__name__}") from exc
    finally:
        engine.dispose()


def _load_mongodb(source: SourceConfig) -> pd.DataFrame:
    import pandas as pd

    try:
        import pymongo
    except ImportError as exc:
        raise DataValidationError("a mongodb source needs: pip install 'conveyor[mongo]'") from exc
    client: Any = pymongo.MongoClient(_env(source.uri, "data.source.uri"))
    try:
        coll = client[_required(source.database, "data.source.database")][
            _required(source.collection, "data.source.collection")
        ]
        docs = list(
            coll.find(
                source.options.get("filter", {}), source.options.get("projection", {"_id": False})
            )
        )
    finally:
        client.close()
    return pd.DataFrame(docs)


def _required(value: str | None, key: str) -> str:
    if not value:
        raise DataValidationError(f"{key} is required for this source type")
    return value


def _env(value: str | None, key: str) -> str:
    """Expand ``${VAR}`` so credentials come from the environment, never from the YAML."""
    return os.path.expandvars(_required(value, key))
