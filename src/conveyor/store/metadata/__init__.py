"""The metadata store: runs, steps, lineage, metrics, datasets, model versions, events."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import MetadataStorageError
from conveyor.store.metadata._base import acting_as
from conveyor.store.metadata.records import (
    KEY_ID,
    ORCHESTRATED,
    ApiKeyRecord,
    ArtifactRef,
    CacheHit,
    DatasetRecord,
    EventRecord,
    ModelVersionRecord,
    PredictionLogRecord,
    RunRecord,
    RunStatus,
    StepKeyParts,
    StepRecord,
    StepStatus,
)
from conveyor.store.metadata.roles import (
    ArtifactIndex,
    AuditLog,
    MetadataStore,
    RegistryStore,
    RunStore,
    ServingStore,
)
from conveyor.store.metadata.sql import SqlMetadataStore, current_actor

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = [
    "KEY_ID",
    "ORCHESTRATED",
    "ApiKeyRecord",
    "ArtifactIndex",
    "ArtifactRef",
    "AuditLog",
    "CacheHit",
    "DatasetRecord",
    "EventRecord",
    "MetadataStore",
    "ModelVersionRecord",
    "PredictionLogRecord",
    "RegistryStore",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "ServingStore",
    "SqlMetadataStore",
    "StepKeyParts",
    "StepRecord",
    "StepStatus",
    "acting_as",
    "current_actor",
    "open_metadata_store",
]

SQLITE_BUSY_TIMEOUT_MS = 30_000


def open_metadata_store(url: str) -> SqlMetadataStore:
    """Open (and migrate) the metadata store at a SQLAlchemy URL.

    ``sqlite:///path.db`` (the default; WAL, busy timeout, write transactions take the lock up
    front), ``sqlite://`` (in memory) or ``postgresql+psycopg://user@host/db``.

    Raises:
        MetadataStorageError: the database cannot be reached, created or migrated.
    """
    from sqlalchemy import create_engine, make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # The URL may hold a password: name the problem, never echo the URL.
        raise MetadataStorageError(
            "invalid metadata URL (store.metadata / $CONVEYOR_METADATA_URL): expected "
            "sqlite:///path.db or postgresql+psycopg://user@host:port/db"
        ) from None
    display = parsed.render_as_string(hide_password=True)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed.database, url)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
        with engine.begin() as conn:
            from conveyor.store.metadata.migrate import upgrade

            upgrade(conn)
    except (SQLAlchemyError, ImportError) as exc:
        raise MetadataStorageError(f"cannot open metadata store {display}: {exc}") from exc
    return SqlMetadataStore(engine, display_url=display)


def _sqlite_engine(database: str | None, url: str) -> Engine:
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import StaticPool

    kwargs: dict[str, Any] = {}
    if not database or database == ":memory:":
        # One shared connection, so every session sees the same in-memory database.
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        if database and database != ":memory:":
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock at BEGIN: a deferred transaction that later upgrades to a writer
        # fails with "database is locked" instead of waiting when another writer holds it.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    if os.environ.get("CONVEYOR_SQL_ECHO"):
        engine.echo = True
    return engine
