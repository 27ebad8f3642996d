"""The model registry half of the SQL metadata store: versions, aliases, statuses, events."""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.config import name_problem
from conveyor.contracts import ModelSignature
from conveyor.errors import (
    MetadataStorageError,
    ModelNotFoundError,
    RegistryError,
)
from conveyor.store.metadata import tables as t
from conveyor.store.metadata.records import (
    EventRecord,
    ModelVersionRecord,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from sqlalchemy import Connection

from conveyor.store.metadata._base import (
    SqlStoreBase,
    _insert_event,
    current_actor,
)

_REGISTER_RETRIES = 20


class RegistryMixin(SqlStoreBase):
    """Model versions, aliases with history, statuses and the audit log."""

    def register_model_version(
        self,
        name: str,
        *,
        digest: str,
        run_id: str | None,
        dataset: str | None = None,
        metrics: Mapping[str, float] | None = None,
        signature: ModelSignature | Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        git_commit: str | None = None,
        config_hash: str | None = None,
        status: str = "candidate",
        reason: str | None = None,
        alias: str | None = None,
        holders: Collection[str] | None = None,
    ) -> ModelVersionRecord:
        """Register the next version of ``name`` (unique under concurrency) with an audit event.

        Args:
            alias: also point this alias at the new version, in the same transaction (a crash
                never leaves a version registered for promotion that did not get its alias).
            holders: statuses that may hold an alias (``registry.governance`` decides); checked
                in the transaction that moves it. None: no check.
        """
        _check_name("model name", name)
        if alias is not None:
            _check_name("alias", alias)
        for _ in range(_REGISTER_RETRIES):
            try:
                with self._tx() as conn:
                    _lock_model_name(conn, name)
                    version = 1 + (
                        conn.execute(
                            select(func.max(t.model_versions.c.version)).where(
                                t.model_versions.c.name == name
                            )
                        ).scalar_one()
                        or 0
                    )
                    values = {
                        "name": name,
                        "version": version,
                        "digest": digest,
                        "run_id": run_id,
                        "dataset": dataset,
                        "status": status,
                        "metrics": dict(metrics or {}),
                        "signature": _plain_signature(signature),
                        "tags": dict(tags or {}),
                        "git_commit": git_commit,
                        "config_hash": config_hash,
                        "reason": reason,
                        "created_at": time.time(),
                    }
                    conn.execute(insert(t.model_versions).values(**values))
                    _insert_event(
                        conn,
                        "register",
                        f"{name}:{version}",
                        reason=reason,
                        details={"run_id": run_id, "digest": digest, "status": status},
                    )
                    if status == "rejected":
                        _insert_event(
                            conn,
                            "reject",
                            f"{name}:{version}",
                            reason=reason,
                            details={"run_id": run_id},
                        )
                    if alias is not None:
                        _move_alias(
                            conn,
                            name,
                            alias,
                            version,
                            reason=reason,
                            action="promote",
                            holders=holders,
                        )
                return _model_version(values)
            except MetadataStorageError as exc:
                if not _is_unique_violation(exc.__cause__):
                    raise
        raise MetadataStorageError(f"could not register {name}: too many concurrent registrations")

    def get_model_version(self, name: str, version: int | None = None) -> ModelVersionRecord:
        """A model version, or the latest of ``name`` when ``version`` is None."""
        query = select(t.model_versions).where(t.model_versions.c.name == name)
        query = (
            query.where(t.model_versions.c.version == version)
            if version is not None
            else query.order_by(t.model_versions.c.version.desc()).limit(1)
        )
        with self._tx() as conn:
            row = conn.execute(query).first()
        if row is None:
            what = f"{name}:{version}" if version is not None else name
            raise ModelNotFoundError(f"no model version {what} (see `conveyor models list`)")
        return _model_version(row._asdict())

    def get_alias(self, name: str, alias: str) -> int:
        """The version ``name@alias`` points at.

        Raises:
            ModelNotFoundError: the alias is not set for ``name``.
        """
        with self._tx() as conn:
            version = conn.execute(
                select(t.aliases.c.version).where(
                    and_(t.aliases.c.name == name, t.aliases.c.alias == alias)
                )
            ).scalar_one_or_none()
        if version is None:
            raise ModelNotFoundError(f"{name}@{alias} is not set (see `conveyor models list`)")
        return int(version)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str | None = None,
        action: str = "promote",
        holders: Collection[str] | None = None,
    ) -> int | None:
        """Point ``name@alias`` at ``version`` in one transaction, with history and an event.

        Returns the version the alias pointed at before (None if it was unset).

        Raises:
            ModelNotFoundError: no such version.
            RegistryError: the version's status is not one of ``holders``.
        """
        with self._tx() as conn:
            return _move_alias(
                conn, name, alias, version, reason=reason, action=action, holders=holders
            )

    def rollback_alias(
        self,
        name: str,
        alias: str,
        *,
        to: int | None = None,
        reason: str | None = None,
        holders: Collection[str] | None = None,
    ) -> tuple[int, int]:
        """Move ``name@alias`` back, in one transaction; returns ``(from_version, to_version)``.

        Without ``to``, the alias returns to the version it held before the current one was
        promoted: promotions push onto the alias's history, rollbacks pop, so rolling back
        twice goes back two promotions rather than undoing the first rollback.

        Raises:
            ModelNotFoundError: the alias is not set.
            RegistryError: there is no earlier version, or the target's status is not one of
                ``holders``.
        """
        _check_name("alias", alias)
        with self._tx() as conn:
            rows = conn.execute(
                select(t.alias_history.c.version, t.alias_history.c.action)
                .where(and_(t.alias_history.c.name == name, t.alias_history.c.alias == alias))
                .order_by(t.alias_history.c.id)
            ).all()
            stack: list[int] = []
            for version, action in rows:
                if action == "rollback" and version in stack:
                    last = len(stack) - 1 - stack[::-1].index(version)
                    del stack[last + 1 :]  # back to where it was
                else:
                    stack.append(version)
            if not stack:
                raise ModelNotFoundError(f"{name}@{alias} is not set: nothing to roll back")
            current = stack[-1]
            if to is None:
                earlier = [v for v in stack[:-1] if v != current]
                if not earlier:
                    raise RegistryError(
                        f"{name}@{alias} has no earlier version to roll back to "
                        f"(it has only ever pointed at v{current}); use --to VER"
                    )
                to = earlier[-1]
            if to == current:
                raise RegistryError(f"{name}@{alias} already points at v{to}")
            _move_alias(conn, name, alias, to, reason=reason, action="rollback", holders=holders)
        return current, to

    def aliases(self, name: str | None = None) -> dict[tuple[str, str], int]:
        """Current aliases: ``(name, alias) -> version``."""
        query = select(t.aliases.c.name, t.aliases.c.alias, t.aliases.c.version)
        if name is not None:
            query = query.where(t.aliases.c.name == name)
        with self._tx() as conn:
            return {(n, a): int(v) for n, a, v in conn.execute(query).all()}

    def alias_history(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Every alias move of ``name`` (optionally one alias), oldest first."""
        query = (
            select(t.alias_history)
            .where(t.alias_history.c.name == name)
            .order_by(t.alias_history.c.id)
        )
        if alias is not None:
            query = query.where(t.alias_history.c.alias == alias)
        with self._tx() as conn:
            return [r._asdict() for r in conn.execute(query).all()]

    def set_model_status(
        self,
        name: str,
        version: int,
        status: str,
        *,
        reason: str | None = None,
        action: str | None = None,
    ) -> None:
        """Change a version's status (``candidate approved rejected archived``), with an event
        named ``action`` (default: the new status)."""
        with self._tx() as conn:
            done = conn.execute(
                update(t.model_versions)
                .where(and_(t.model_versions.c.name == name, t.model_versions.c.version == version))
                .values(status=status, reason=reason)
            )
            if done.rowcount == 0:
                raise ModelNotFoundError(f"no model version {name}:{version}")
            _insert_event(
                conn,
                action or status,
                f"{name}:{version}",
                reason=reason,
                details={"status": status},
            )

    def list_model_versions(self, name: str | None = None) -> list[ModelVersionRecord]:
        """Registered versions, newest first."""
        query = select(t.model_versions).order_by(
            t.model_versions.c.name, t.model_versions.c.version.desc()
        )
        if name is not None:
            query = query.where(t.model_versions.c.name == name)
        with self._tx() as conn:
            return [_model_version(r._asdict()) for r in conn.execute(query).all()]

    def newest_model_versions(self, per_name: int) -> list[ModelVersionRecord]:
        """The ``per_name`` newest versions of every model, by name then newest first: what an
        overview shows, without reading every version ever registered."""
        rank = (
            func.row_number()
            .over(partition_by=t.model_versions.c.name, order_by=t.model_versions.c.version.desc())
            .label("rank")
        )
        ranked = select(t.model_versions, rank).subquery()
        query = (
            select(*[ranked.c[c.name] for c in t.model_versions.columns])
            .where(ranked.c.rank <= per_name)
            .order_by(ranked.c.name, ranked.c.version.desc())
        )
        with self._tx() as conn:
            return [_model_version(r._asdict()) for r in conn.execute(query).all()]

    def model_version_counts(self) -> dict[str, dict[str, int]]:
        """Model name -> status -> number of versions, counted by the database."""
        query = select(t.model_versions.c.name, t.model_versions.c.status, func.count()).group_by(
            t.model_versions.c.name, t.model_versions.c.status
        )
        counts: dict[str, dict[str, int]] = {}
        with self._tx() as conn:
            for name, status, n in conn.execute(query).all():
                counts.setdefault(name, {})[status] = int(n)
        return counts

    def append_event(
        self,
        action: str,
        entity: str,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one audit event (actor from ``$CONVEYOR_ACTOR`` or the OS user)."""
        with self._tx() as conn:
            _insert_event(conn, action, entity, reason=reason, details=details)

    def list_events(
        self,
        *,
        since: float | None = None,
        entity: str | None = None,
        action: str | None = None,
        last: int | None = None,
    ) -> list[EventRecord]:
        """Audit events, oldest first; ``entity`` keeps those of one model (``name`` or
        ``name:version``), ``action`` those of one kind, ``last`` only the newest N."""
        e = t.events.c
        query = select(t.events)
        if since is not None:
            query = query.where(e.at >= since)
        if entity is not None:
            query = query.where(
                (e.entity == entity) | e.entity.startswith(f"{entity}:", autoescape=True)
            )
        if action is not None:
            query = query.where(e.action == action)
        newest_first = last is not None
        query = query.order_by(e.id.desc()).limit(last) if newest_first else query.order_by(e.id)
        with self._tx() as conn:
            found = [EventRecord(**r._asdict()) for r in conn.execute(query).all()]
        return found[::-1] if newest_first else found


def _is_unique_violation(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a duplicate-key error (not a foreign-key or NOT NULL one)."""
    if not isinstance(exc, IntegrityError):
        return False
    if getattr(exc.orig, "sqlstate", None) == "23505":  # PostgreSQL unique_violation
        return True
    return "UNIQUE constraint failed" in str(exc.orig)  # SQLite


def _move_alias(
    conn: Connection,
    name: str,
    alias: str,
    version: int,
    *,
    reason: str | None,
    action: str,
    holders: Collection[str] | None,
) -> int | None:
    _check_name("alias", alias)
    status = conn.execute(
        select(t.model_versions.c.status).where(
            and_(t.model_versions.c.name == name, t.model_versions.c.version == version)
        )
    ).scalar_one_or_none()
    if status is None:
        raise ModelNotFoundError(f"no model version {name}:{version}")
    if holders is not None and status not in holders:
        raise RegistryError(
            f"{name}:{version} is {status}; a {status} version cannot be given an alias"
        )
    previous = conn.execute(
        select(t.aliases.c.version).where(
            and_(t.aliases.c.name == name, t.aliases.c.alias == alias)
        )
    ).scalar_one_or_none()
    now = time.time()
    if previous is None:
        conn.execute(
            insert(t.aliases).values(name=name, alias=alias, version=version, updated_at=now)
        )
    else:
        conn.execute(
            update(t.aliases)
            .where(and_(t.aliases.c.name == name, t.aliases.c.alias == alias))
            .values(version=version, updated_at=now)
        )
    conn.execute(
        insert(t.alias_history).values(
            name=name,
            alias=alias,
            version=version,
            previous_version=previous,
            action=action,
            actor=current_actor(),
            reason=reason,
            at=now,
        )
    )
    _insert_event(
        conn,
        action,
        f"{name}:{version}",
        reason=reason,
        details={"alias": alias, "previous_version": previous},
    )
    return None if previous is None else int(previous)


def _lock_model_name(conn: Connection, name: str) -> None:
    """Serialise registrations of one model name until the transaction ends.

    PostgreSQL runs READ COMMITTED: concurrent registrations read the same max(version) and all
    but one fail on the unique constraint, so under contention a process can lose every retry.
    SQLite needs nothing: BEGIN IMMEDIATE already serialises writers.
    """
    if conn.dialect.name == "postgresql":
        digest = hashlib.sha256(f"conveyor.model_versions:{name}".encode()).digest()
        conn.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest[:8], signed=True))))


def _plain_signature(
    signature: ModelSignature | Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    if isinstance(signature, ModelSignature):
        return signature.to_json()
    return dict(signature) if signature else None


def _model_version(values: Mapping[str, Any]) -> ModelVersionRecord:
    fields = {k: v for k, v in values.items() if k != "id"}
    return ModelVersionRecord(**fields)


def _check_name(kind: str, value: str) -> None:
    problem = name_problem(kind, value)
    if problem is not None:
        raise RegistryError(problem)
