"""SqlMetadataStore: runs, steps, lineage, metrics, datasets, models and events in SQL.

SQLite (the embedded default) and PostgreSQL share this code. Every public method is one
transaction; SQLAlchemy errors are translated into :class:`MetadataStorageError` here and never
escape. The registry half (versions, aliases, events) lives in ``_registry.py``.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, insert, select, update

from conveyor._lifeline import process_running
from conveyor.errors import (
    NotFoundError,
)
from conveyor.store.metadata import tables as t
from conveyor.store.metadata.records import (
    ORCHESTRATED,
    ArtifactRef,
    CacheHit,
    DatasetRecord,
    RunRecord,
    RunStatus,
    StepKeyParts,
    StepRecord,
    StepStatus,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from sqlalchemy import Connection, Row, Select

from conveyor.store.metadata._base import (
    ACTOR_ENV,
    Metrics,
    _insert_ignoring_duplicates,
    _insert_metrics,
    _insert_missing_artifacts,
    current_actor,
)
from conveyor.store.metadata._registry import RegistryMixin
from conveyor.store.metadata._serving import ServingMixin

__all__ = ["ACTOR_ENV", "SqlMetadataStore", "current_actor"]


RUN_ID_LENGTH = 32  # uuid4().hex, or an orchestrator key's uuid5().hex


class SqlMetadataStore(RegistryMixin, ServingMixin):
    """The metadata store on a SQLAlchemy engine (open one with ``open_metadata_store``)."""

    # -- runs -----------------------------------------------------------------------------

    def create_run(
        self,
        pipeline: str,
        step_names: Sequence[str],
        *,
        executor: str,
        params: Mapping[str, Any] | None = None,
        git_commit: str | None = None,
        config_hash: str | None = None,
        run_id: str | None = None,
    ) -> tuple[str, dict[str, int]]:
        """Record a running run with its steps pending; returns ``(run_id, step ids by name)``.

        ``run_id`` (32 hex digits) is given when an orchestrator names the run; a second
        create with the same id fails (the caller reads the run made first).
        """
        run_id = run_id or uuid.uuid4().hex
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                insert(t.runs).values(
                    id=run_id,
                    pipeline=pipeline,
                    status=RunStatus.RUNNING,
                    started_at=now,
                    executor=executor,
                    git_commit=git_commit,
                    config_hash=config_hash,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
            )
            if params:
                conn.execute(
                    insert(t.run_params),
                    [{"run_id": run_id, "key": k, "value": v} for k, v in params.items()],
                )
            if step_names:
                conn.execute(
                    insert(t.steps),
                    [
                        {
                            "run_id": run_id,
                            "name": name,
                            "position": i,
                            "status": StepStatus.PENDING,
                        }
                        for i, name in enumerate(step_names)
                    ],
                )
            rows = conn.execute(
                select(t.steps.c.name, t.steps.c.id).where(t.steps.c.run_id == run_id)
            ).all()
        return run_id, {name: step_id for name, step_id in rows}

    def finish_run(self, run_id: str, status: RunStatus, *, error: str | None = None) -> None:
        """Close a run; steps still pending are marked skipped, steps still running interrupted."""
        now = time.time()
        with self._tx() as conn:
            conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(status=status, ended_at=now, error=error)
            )
            conn.execute(
                update(t.steps)
                .where(and_(t.steps.c.run_id == run_id, t.steps.c.status == StepStatus.RUNNING))
                .values(status=StepStatus.INTERRUPTED, ended_at=now)
            )
            conn.execute(
                update(t.steps)
                .where(and_(t.steps.c.run_id == run_id, t.steps.c.status == StepStatus.PENDING))
                .values(status=StepStatus.SKIPPED)
            )

    def set_run_status(self, run_id: str, status: RunStatus, *, error: str | None = None) -> None:
        """Set a run's status without touching its steps (an orchestrated run: other steps
        may still be running elsewhere); a running run has no end time."""
        ended = None if status is RunStatus.RUNNING else time.time()
        with self._tx() as conn:
            conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(status=status, ended_at=ended, error=error)
            )

    def recover_interrupted(self) -> list[str]:
        """Mark runs whose process died (same host, pid gone) as interrupted; returns their ids.

        Orchestrated runs are left alone: no one process holds them.
        """
        host = socket.gethostname()
        with self._tx() as conn:
            rows = conn.execute(
                select(t.runs.c.id, t.runs.c.pid).where(
                    and_(
                        t.runs.c.status == RunStatus.RUNNING,
                        t.runs.c.host == host,
                        t.runs.c.executor != ORCHESTRATED,
                    )
                )
            ).all()
            dead = [run_id for run_id, pid in rows if not process_running(pid)]
            if not dead:
                return []
            now = time.time()
            conn.execute(
                update(t.runs)
                .where(t.runs.c.id.in_(dead))
                .values(status=RunStatus.INTERRUPTED, ended_at=now, error="process died")
            )
            conn.execute(
                update(t.steps)
                .where(and_(t.steps.c.run_id.in_(dead), t.steps.c.status == StepStatus.RUNNING))
                .values(status=StepStatus.INTERRUPTED, ended_at=now)
            )
            conn.execute(
                update(t.steps)
                .where(and_(t.steps.c.run_id.in_(dead), t.steps.c.status == StepStatus.PENDING))
                .values(status=StepStatus.SKIPPED)
            )
        return dead

    def record_artifacts(self, refs: Iterable[ArtifactRef]) -> None:
        """Record artifacts whose bytes are already stored (e.g. a run's supplied inputs)."""
        with self._tx() as conn:
            _insert_missing_artifacts(conn, list(refs), time.time())

    # -- steps ----------------------------------------------------------------------------

    def start_step(
        self, step_id: int, *, cache_key: str, key_parts: Mapping[str, Any] | None = None
    ) -> None:
        """Mark a step running, with its cache key and (optionally) the key's parts."""
        self._update_step(
            step_id,
            status=StepStatus.RUNNING,
            cache_key=cache_key,
            key_parts=None if key_parts is None else dict(key_parts),
            started_at=time.time(),
        )

    def complete_step(
        self,
        step_id: int,
        *,
        inputs: Iterable[ArtifactRef],
        outputs: Iterable[ArtifactRef],
        metrics: Metrics | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
    ) -> None:
        """Record a step's success, its lineage edges and metrics, in one transaction.

        The artifacts' bytes must already be in the artifact store: a row never points at
        missing bytes.
        """
        outputs = list(outputs)
        now = time.time()
        with self._tx() as conn:
            _insert_missing_artifacts(conn, outputs, now)
            _insert_edges(conn, step_id, inputs, outputs)
            values: dict[str, Any] = {"status": StepStatus.SUCCEEDED, "ended_at": ended_at or now}
            if started_at is not None:
                values["started_at"] = started_at
            conn.execute(update(t.steps).where(t.steps.c.id == step_id).values(**values))
            if metrics:
                run_id = conn.execute(
                    select(t.steps.c.run_id).where(t.steps.c.id == step_id)
                ).scalar_one()
                _insert_metrics(conn, run_id, step_id, metrics, now)

    def cache_step(
        self,
        step_id: int,
        hit: CacheHit,
        *,
        cache_key: str,
        inputs: Iterable[ArtifactRef],
        key_parts: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a step as satisfied by an earlier execution; its metrics are copied over."""
        now = time.time()
        with self._tx() as conn:
            _insert_edges(conn, step_id, inputs, hit.outputs)
            conn.execute(
                update(t.steps)
                .where(t.steps.c.id == step_id)
                .values(
                    status=StepStatus.CACHED,
                    cache_key=cache_key,
                    key_parts=None if key_parts is None else dict(key_parts),
                    cached_from=hit.step_id,
                    started_at=now,
                    ended_at=now,
                )
            )
            run_id = conn.execute(
                select(t.steps.c.run_id).where(t.steps.c.id == step_id)
            ).scalar_one()
            old = conn.execute(
                select(t.metrics.c.key, t.metrics.c.value, t.metrics.c.iteration)
                .where(t.metrics.c.step_id == hit.step_id)
                .order_by(t.metrics.c.id)
            ).all()
            _insert_metrics(conn, run_id, step_id, [tuple(row) for row in old], now)

    def fail_step(
        self,
        step_id: int,
        *,
        error: str,
        traceback: str | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
        outputs: Iterable[ArtifactRef] = (),
        metrics: Metrics | None = None,
    ) -> None:
        """Record a step's failure with its message and traceback (times as the step saw them),
        and what it attached (e.g. a validation report) or logged before failing."""
        values: dict[str, Any] = {"started_at": started_at} if started_at is not None else {}
        outputs = list(outputs)
        with self._tx() as conn:
            _insert_missing_artifacts(conn, outputs, time.time())
            _insert_edges(conn, step_id, (), outputs)
            if metrics:
                run_id = conn.execute(
                    select(t.steps.c.run_id).where(t.steps.c.id == step_id)
                ).scalar_one()
                _insert_metrics(conn, run_id, step_id, metrics, time.time())
            conn.execute(
                update(t.steps)
                .where(t.steps.c.id == step_id)
                .values(
                    status=StepStatus.FAILED,
                    error=error,
                    traceback=traceback,
                    ended_at=ended_at or time.time(),
                    **values,
                )
            )

    def claim_step(
        self, step_id: int, *, seen: StepStatus, seen_started_at: float | None = None
    ) -> bool:
        """Take a step of an orchestrated run for this process: mark it running, forgetting an
        earlier attempt's lineage, metrics, trials and error, in one transaction.

        Only if it is still as the caller saw it (``seen``, and for a running step the same
        start time): of two processes starting the same step at once, one gets it.
        """
        same = [t.steps.c.id == step_id, t.steps.c.status == seen]
        if seen is StepStatus.RUNNING:
            same.append(t.steps.c.started_at == seen_started_at)
        with self._tx() as conn:
            claimed = conn.execute(
                update(t.steps)
                .where(and_(*same))
                .values(
                    status=StepStatus.RUNNING,
                    cache_key=None,
                    cached_from=None,
                    started_at=time.time(),
                    ended_at=None,
                    error=None,
                    traceback=None,
                    key_parts=None,
                )
            ).rowcount
            if claimed != 1:
                return False
            if seen is not StepStatus.PENDING:
                for table in (t.step_artifacts, t.metrics, t.trials):
                    conn.execute(delete(table).where(table.c.step_id == step_id))
        return True

    def skip_step(self, step_id: int, *, reason: str) -> None:
        """Mark a step skipped (an upstream step failed)."""
        self._update_step(step_id, status=StepStatus.SKIPPED, error=reason)

    def _update_step(self, step_id: int, **values: Any) -> None:
        with self._tx() as conn:
            conn.execute(update(t.steps).where(t.steps.c.id == step_id).values(**values))

    def find_cache_hit(self, cache_key: str) -> CacheHit | None:
        """The latest successful execution of a step with ``cache_key``, if any."""
        with self._tx() as conn:
            row = conn.execute(
                select(t.steps.c.id, t.steps.c.run_id)
                .where(
                    and_(t.steps.c.cache_key == cache_key, t.steps.c.status == StepStatus.SUCCEEDED)
                )
                .order_by(t.steps.c.id.desc())
                .limit(1)
            ).first()
            if row is None:
                return None
            edges = _edges(conn, [row.id])
        return CacheHit(step_id=row.id, run_id=row.run_id, outputs=edges.get((row.id, "out"), ()))

    def step_key_parts(self, run_id: str) -> list[StepKeyParts]:
        """The recorded cache key parts of a run's steps, in pipeline order (steps that never
        got a key, e.g. skipped ones or runs recorded before key parts existed, are left out)."""
        with self._tx() as conn:
            rows = conn.execute(
                _key_parts_query()
                .where(and_(t.steps.c.run_id == run_id, t.steps.c.key_parts.is_not(None)))
                .order_by(t.steps.c.position)
            ).all()
        return [_key_parts_record(row) for row in rows]

    def previous_key_parts(
        self, pipeline: str, step_name: str, *, before_step_id: int
    ) -> StepKeyParts | None:
        """The latest recorded key parts of step ``step_name`` in an earlier run of
        ``pipeline`` (a step row older than ``before_step_id``), or None."""
        with self._tx() as conn:
            row = conn.execute(
                _key_parts_query()
                .join(t.runs, t.runs.c.id == t.steps.c.run_id)
                .where(
                    and_(
                        t.runs.c.pipeline == pipeline,
                        t.steps.c.name == step_name,
                        t.steps.c.id < before_step_id,
                        t.steps.c.key_parts.is_not(None),
                    )
                )
                .order_by(t.steps.c.id.desc())
                .limit(1)
            ).first()
        return None if row is None else _key_parts_record(row)

    def log_metrics(
        self,
        run_id: str,
        metrics: Metrics,
        *,
        step_id: int | None = None,
        iteration: int = 0,
    ) -> None:
        """Bulk-insert metrics for a run (one transaction, one statement).

        ``metrics`` is ``{key: value}`` (all at ``iteration``) or ``(key, value, iteration)``
        rows, e.g. a whole training curve at once.
        """
        with self._tx() as conn:
            _insert_metrics(conn, run_id, step_id, metrics, time.time(), iteration=iteration)

    # -- reading runs ---------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        """A run with its steps, params and latest metrics; ``run_id`` may be a unique prefix.

        Raises:
            NotFoundError: no run, or the prefix matches several.
        """
        if not run_id:
            raise NotFoundError("give a run id (see `conveyor runs list`)")
        # a whole id is looked up by the primary key: PostgreSQL's LIKE 'prefix%' cannot use
        # that index under a non-C collation and scans every run
        same = (
            t.runs.c.id == run_id
            if len(run_id) == RUN_ID_LENGTH
            else t.runs.c.id.startswith(run_id, autoescape=True)
        )
        with self._tx() as conn:
            rows = conn.execute(select(t.runs).where(same).limit(2)).all()
            if not rows:
                raise NotFoundError(f"no run {run_id!r} (see `conveyor runs list`)")
            if len(rows) > 1:
                raise NotFoundError(f"run prefix {run_id!r} is ambiguous; give more characters")
            run = rows[0]
            step_rows = conn.execute(
                select(t.steps).where(t.steps.c.run_id == run.id).order_by(t.steps.c.position)
            ).all()
            edges = _edges(conn, [s.id for s in step_rows])
            params = dict(
                conn.execute(
                    select(t.run_params.c.key, t.run_params.c.value).where(
                        t.run_params.c.run_id == run.id
                    )
                ).all()
            )
            metrics = dict(
                conn.execute(
                    select(t.metrics.c.key, t.metrics.c.value)
                    .where(t.metrics.c.run_id == run.id)
                    .order_by(t.metrics.c.id)
                ).all()
            )
        steps = tuple(
            _step_record(s, edges.get((s.id, "in"), ()), edges.get((s.id, "out"), ()))
            for s in step_rows
        )
        return _run_record(run, steps=steps, params=params, metrics=metrics)

    def list_runs(
        self,
        *,
        limit: int = 20,
        pipeline: str | None = None,
        status: str | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Most recent runs first, with their steps (no params or metrics); ``offset`` skips
        that many (a page of a long list), ``status`` keeps only runs in that status."""
        query = (
            select(t.runs)
            .order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        if pipeline is not None:
            query = query.where(t.runs.c.pipeline == pipeline)
        if status is not None:
            query = query.where(t.runs.c.status == status)
        with self._tx() as conn:
            runs = conn.execute(query).all()
            step_rows = conn.execute(
                select(t.steps)
                .where(t.steps.c.run_id.in_([r.id for r in runs]))
                .order_by(t.steps.c.position)
            ).all()
        by_run: dict[str, list[StepRecord]] = {}
        for s in step_rows:
            by_run.setdefault(s.run_id, []).append(_step_record(s, (), ()))
        return [_run_record(r, steps=tuple(by_run.get(r.id, ()))) for r in runs]

    def run_outputs(self, run_ids: Sequence[str], name: str) -> dict[str, ArtifactRef]:
        """The output called ``name`` of each of ``run_ids`` that has one, in one query (a page
        showing many runs' gate reports reads them without loading each run)."""
        if not run_ids:
            return {}
        with self._tx() as conn:
            rows = conn.execute(
                select(
                    t.steps.c.run_id, t.artifacts.c.digest, t.artifacts.c.kind, t.artifacts.c.size
                )
                .join(t.step_artifacts, t.step_artifacts.c.step_id == t.steps.c.id)
                .join(t.artifacts, t.artifacts.c.digest == t.step_artifacts.c.digest)
                .where(
                    and_(
                        t.steps.c.run_id.in_(list(run_ids)),
                        t.step_artifacts.c.direction == "out",
                        t.step_artifacts.c.name == name,
                    )
                )
            ).all()
        return {r.run_id: ArtifactRef(name, r.digest, r.kind, r.size) for r in rows}

    def artifact_kind(self, digest: str) -> str:
        """The serializer kind an artifact was stored with."""
        with self._tx() as conn:
            kind = conn.execute(
                select(t.artifacts.c.kind).where(t.artifacts.c.digest == digest)
            ).scalar_one_or_none()
        if kind is None:
            raise NotFoundError(f"no artifact {digest} recorded in the metadata store")
        return str(kind)

    # -- datasets, models, events ---------------------------------------------------------

    def record_dataset(
        self,
        fingerprint: str,
        *,
        source: str,
        n_rows: int,
        n_columns: int,
        schema_hash: str | None = None,
        digest: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Record a dataset version; recording the same fingerprint again changes nothing."""
        row = {
            "fingerprint": fingerprint,
            "source": source,
            "n_rows": n_rows,
            "n_columns": n_columns,
            "schema_hash": schema_hash,
            "digest": digest,
            "run_id": run_id,
            "created_at": time.time(),
        }
        with self._tx() as conn:
            _insert_ignoring_duplicates(conn, t.datasets, [row])

    def list_datasets(self) -> list[DatasetRecord]:
        """Dataset versions, newest first, each with the model versions trained on it."""
        with self._tx() as conn:
            rows = conn.execute(select(t.datasets).order_by(t.datasets.c.created_at.desc())).all()
            used = conn.execute(
                select(
                    t.model_versions.c.dataset, t.model_versions.c.name, t.model_versions.c.version
                )
                .where(t.model_versions.c.dataset.is_not(None))
                .order_by(t.model_versions.c.name, t.model_versions.c.version)
            ).all()
        models: dict[str, list[str]] = {}
        for dataset, name, version in used:
            models.setdefault(dataset, []).append(f"{name}:{version}")
        return [
            DatasetRecord(**r._asdict(), models=tuple(models.get(r.fingerprint, ()))) for r in rows
        ]

    def log_trials(
        self, run_id: str, step_name: str, candidate: str, trials: Iterable[Mapping[str, Any]]
    ) -> None:
        """Bulk-record tuning trials (``number state value params fold_scores seconds error``)."""
        with self._tx() as conn:
            step_id = conn.execute(
                select(t.steps.c.id).where(
                    and_(t.steps.c.run_id == run_id, t.steps.c.name == step_name)
                )
            ).scalar_one_or_none()
            rows = [
                {
                    "run_id": run_id,
                    "step_id": step_id,
                    "candidate": candidate,
                    "number": tr["number"],
                    "state": tr["state"],
                    "value": tr.get("value"),
                    "params": dict(tr.get("params", {})),
                    "fold_scores": list(tr.get("fold_scores", [])),
                    "seconds": float(tr.get("seconds", 0.0)),
                    "error": tr.get("error"),
                }
                for tr in trials
            ]
            if rows:
                conn.execute(insert(t.trials), rows)

    def list_trials(self, run_id: str) -> list[dict[str, Any]]:
        """A run's tuning trials, following cached steps to the run that really tuned."""
        with self._tx() as conn:
            origins = [
                row.cached_from or row.id
                for row in conn.execute(
                    select(t.steps.c.id, t.steps.c.cached_from).where(t.steps.c.run_id == run_id)
                ).all()
            ]
            rows = conn.execute(
                select(t.trials)
                .where(t.trials.c.step_id.in_(origins))
                .order_by(t.trials.c.candidate, t.trials.c.number)
            ).all()
        return [r._asdict() for r in rows]


# -- helpers ------------------------------------------------------------------------------


def _insert_edges(
    conn: Connection, step_id: int, inputs: Iterable[ArtifactRef], outputs: Iterable[ArtifactRef]
) -> None:
    rows = [
        {"step_id": step_id, "direction": direction, "name": ref.name, "digest": ref.digest}
        for direction, refs in (("in", inputs), ("out", outputs))
        for ref in refs
    ]
    if rows:
        conn.execute(insert(t.step_artifacts), rows)


def _edges(
    conn: Connection, step_ids: Sequence[int]
) -> dict[tuple[int, str], tuple[ArtifactRef, ...]]:
    if not step_ids:
        return {}
    rows = conn.execute(
        select(
            t.step_artifacts.c.step_id,
            t.step_artifacts.c.direction,
            t.step_artifacts.c.name,
            t.artifacts.c.digest,
            t.artifacts.c.kind,
            t.artifacts.c.size,
        )
        .join(t.artifacts, t.artifacts.c.digest == t.step_artifacts.c.digest)
        .where(t.step_artifacts.c.step_id.in_(step_ids))
        .order_by(t.step_artifacts.c.name)
    ).all()
    out: dict[tuple[int, str], list[ArtifactRef]] = {}
    for r in rows:
        out.setdefault((r.step_id, r.direction), []).append(
            ArtifactRef(name=r.name, digest=r.digest, kind=r.kind, size=r.size)
        )
    return {k: tuple(v) for k, v in out.items()}


def _key_parts_query() -> Select[Any]:
    origin = t.steps.alias("origin")
    return select(
        t.steps.c.id,
        t.steps.c.run_id,
        t.steps.c.name,
        t.steps.c.status,
        origin.c.run_id.label("cached_from_run"),
        t.steps.c.key_parts,
    ).outerjoin(origin, origin.c.id == t.steps.c.cached_from)


def _key_parts_record(row: Row[Any]) -> StepKeyParts:
    return StepKeyParts(
        step_id=row.id,
        run_id=row.run_id,
        name=row.name,
        status=StepStatus(row.status),
        cached_from_run=row.cached_from_run,
        parts=dict(row.key_parts),
    )


def _step_record(
    row: Row[Any], inputs: tuple[ArtifactRef, ...], outputs: tuple[ArtifactRef, ...]
) -> StepRecord:
    values = row._asdict()
    values.pop("key_parts", None)  # read through step_key_parts, not part of the record
    values["status"] = StepStatus(values["status"])
    return StepRecord(**values, inputs=inputs, outputs=outputs)


def _run_record(row: Row[Any], **extra: Any) -> RunRecord:
    values = row._asdict()
    values["status"] = RunStatus(values["status"])
    return RunRecord(**values, **extra)
