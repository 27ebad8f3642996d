"""The SQL metadata store's foundation: the engine, one transaction per call, shared inserts."""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from conveyor.errors import (
    ConveyorError,
    MetadataStorageError,
)
from conveyor.store.metadata import tables as t

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy import Connection, Engine, Table

    from conveyor.store.metadata.records import (
        ArtifactRef,
    )

ACTOR_ENV = "CONVEYOR_ACTOR"
Metrics = Mapping[str, float] | Iterable[tuple[str, float, int]]


_ACTOR: ContextVar[str | None] = ContextVar("conveyor_actor", default=None)


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Events written in this block (this thread or task only) name ``actor``: a server acting
    for a signed-in user (``ui:KEYNAME``), where the process's own user is not who acts."""
    token = _ACTOR.set(actor)
    try:
        yield
    finally:
        _ACTOR.reset(token)


def current_actor() -> str:
    """Who is acting: the :func:`acting_as` block's actor, ``$CONVEYOR_ACTOR``, or the OS user."""
    if actor := _ACTOR.get() or os.environ.get(ACTOR_ENV):
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


class SqlStoreBase:
    """A SQLAlchemy engine and the transaction helper every metadata method runs in."""

    def __init__(self, engine: Engine, *, display_url: str) -> None:
        self._engine = engine
        self.display_url = display_url

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except ConveyorError:
            raise
        except SQLAlchemyError as exc:
            detail = exc.args[0] if exc.args else exc
            raise MetadataStorageError(
                f"metadata store {self.display_url}: {type(exc).__name__}: {detail}"
            ) from exc


def _insert_event(
    conn: Connection,
    action: str,
    entity: str,
    *,
    reason: str | None,
    details: Mapping[str, Any] | None,
) -> None:
    conn.execute(
        insert(t.events).values(
            at=time.time(),
            actor=current_actor(),
            action=action,
            entity=entity,
            reason=reason,
            details=dict(details or {}),
        )
    )


def _insert_ignoring_duplicates(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: safe when two writers record the same key at once."""
    if not rows:
        return
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)


def _insert_missing_artifacts(conn: Connection, refs: Sequence[ArtifactRef], now: float) -> None:
    rows = {
        r.digest: {"digest": r.digest, "kind": r.kind, "size": r.size, "created_at": now}
        for r in refs
    }
    _insert_ignoring_duplicates(conn, t.artifacts, list(rows.values()))


def _insert_metrics(
    conn: Connection,
    run_id: str,
    step_id: int | None,
    metrics: Metrics,
    now: float,
    *,
    iteration: int = 0,
) -> None:
    """One bulk INSERT; ``metrics`` is ``{key: value}`` or ``(key, value, iteration)`` rows."""
    rows = (
        [(k, v, iteration) for k, v in metrics.items()]
        if isinstance(metrics, Mapping)
        else list(metrics)
    )
    if rows:
        conn.execute(
            insert(t.metrics),
            [
                {
                    "run_id": run_id,
                    "step_id": step_id,
                    "key": k,
                    "value": float(v),
                    "iteration": int(i),
                    "logged_at": now,
                }
                for k, v, i in rows
            ],
        )
