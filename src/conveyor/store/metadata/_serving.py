"""The serving half of the SQL metadata store: API keys and the prediction log index."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.errors import MetadataError, MetadataStorageError, NotFoundError
from conveyor.store.metadata import tables as t
from conveyor.store.metadata._base import (
    SqlStoreBase,
    _insert_event,
    _insert_missing_artifacts,
    current_actor,
)
from conveyor.store.metadata.records import (
    KEY_ID,
    KEY_SCOPES,
    ApiKeyRecord,
    ArtifactRef,
    PredictionLogRecord,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy import Row


class ServingMixin(SqlStoreBase):
    """API keys (salted hashes only) and the partitions of the prediction log."""

    def create_api_key(
        self,
        name: str,
        *,
        key_id: str,
        salt: str,
        hashed: str,
        scopes: Iterable[str] = ("predict",),
    ) -> ApiKeyRecord:
        """Record a new key under a unique name, with an audit event naming its scopes (the
        secret never enters).

        Args:
            scopes: what the key may do, from :data:`KEY_SCOPES`; stored as given (deduplicated,
                in that order): no scope implies another here.

        Raises:
            ValueError: no scope, or one that is not in :data:`KEY_SCOPES` (the message names it).
            MetadataStorageError: a key called ``name`` exists already.
            MetadataError: ``name`` looks like a key id (it could be confused with one).
        """
        if KEY_ID.fullmatch(name):
            raise MetadataError(
                f"key name {name!r} looks like a key id (12 hex digits); choose another name"
            )
        granted = _valid_scopes(name, scopes)
        now, actor = time.time(), current_actor()
        row: dict[str, Any] = {
            "key_id": key_id,
            "name": name,
            "salt": salt,
            "hash": hashed,
            "created_at": now,
            "created_by": actor,
            "scopes": " ".join(granted),
        }
        try:
            with self._tx() as conn:
                conn.execute(insert(t.api_keys).values(**row))
                _insert_event(
                    conn,
                    "key.create",
                    f"key:{name}",
                    reason=None,
                    details={"id": key_id, "scopes": list(granted)},
                )
        except MetadataStorageError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise MetadataStorageError(f"an API key named {name!r} exists already") from None
            raise
        return ApiKeyRecord(**{**row, "scopes": granted}, revoked_at=None)

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones included, oldest first."""
        query = select(t.api_keys).order_by(t.api_keys.c.created_at, t.api_keys.c.key_id)
        with self._tx() as conn:
            return [_key_record(r) for r in conn.execute(query).all()]

    def revoke_api_key(
        self, name_or_id: str, *, reason: str | None = None, by: Literal["name", "id"] | None = None
    ) -> ApiKeyRecord:
        """Revoke a key by name or id (idempotent), with an audit event.

        Args:
            by: match only the name or only the id (default: either, refusing a value that is
                one key's name and another key's id).

        Raises:
            NotFoundError: no such key.
            MetadataError: ``name_or_id`` names one key and is the id of another.
        """
        keys = t.api_keys.c
        match = {
            "name": keys.name == name_or_id,
            "id": keys.key_id == name_or_id,
            None: (keys.name == name_or_id) | (keys.key_id == name_or_id),
        }[by]
        with self._tx() as conn:
            rows = conn.execute(select(t.api_keys).where(match)).all()
            if not rows:
                raise NotFoundError(f"no API key named {name_or_id!r} or with that id")
            if len(rows) > 1:  # one key's name is another key's id: never guess which
                named = next(r for r in rows if r.name == name_or_id)
                other = next(r for r in rows if r.key_id == name_or_id)
                raise MetadataError(
                    f"{name_or_id!r} is the name of key id {named.key_id} and the id of key "
                    f"{other.name!r}; say which: --by name or --by id"
                )
            row = rows[0]
            record = _key_record(row)
            if record.revoked_at is not None:
                return record
            now = time.time()
            conn.execute(
                update(t.api_keys).where(keys.key_id == record.key_id).values(revoked_at=now)
            )
            _insert_event(
                conn,
                "key.revoke",
                f"key:{record.name}",
                reason=reason,
                details={"id": record.key_id},
            )
        return _key_record(row, revoked_at=now)

    def record_prediction_log(
        self,
        model_name: str,
        model_version: int,
        ref: ArtifactRef,
        *,
        n_rows: int,
        first_at: float,
        last_at: float,
    ) -> PredictionLogRecord:
        """Index one Parquet partition of logged predictions (its bytes are already stored)."""
        now = time.time()
        row = {
            "model_name": model_name,
            "model_version": model_version,
            "digest": ref.digest,
            "n_rows": n_rows,
            "first_at": first_at,
            "last_at": last_at,
            "created_at": now,
        }
        with self._tx() as conn:
            _insert_missing_artifacts(conn, [ref], now)
            result = conn.execute(insert(t.prediction_logs).values(**row))
            new_id = result.inserted_primary_key
        assert new_id is not None
        return PredictionLogRecord(
            id=int(new_id[0]),
            model_name=model_name,
            model_version=model_version,
            digest=ref.digest,
            n_rows=n_rows,
            first_at=first_at,
            last_at=last_at,
            created_at=now,
        )

    def list_prediction_logs(
        self,
        model_name: str,
        *,
        version: int | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[PredictionLogRecord]:
        """Partitions of ``model_name``'s log overlapping ``[since, until]``, oldest first."""
        c = t.prediction_logs.c
        query = select(t.prediction_logs).where(c.model_name == model_name).order_by(c.id)
        if version is not None:
            query = query.where(c.model_version == version)
        if since is not None:
            query = query.where(c.last_at >= since)
        if until is not None:
            query = query.where(c.first_at <= until)
        with self._tx() as conn:
            return [PredictionLogRecord(**r._asdict()) for r in conn.execute(query).all()]


def _valid_scopes(name: str, scopes: Iterable[str]) -> tuple[str, ...]:
    """``scopes`` deduplicated in :data:`KEY_SCOPES` order; a bad or empty set is refused."""
    asked = [scopes] if isinstance(scopes, str) else list(scopes)
    unknown = [s for s in asked if s not in KEY_SCOPES]
    if unknown:
        raise ValueError(
            f"API key {name!r}: unknown scope {unknown[0]!r}; scopes are {', '.join(KEY_SCOPES)}"
        )
    if not asked:
        raise ValueError(f"API key {name!r}: give it at least one scope ({', '.join(KEY_SCOPES)})")
    return tuple(s for s in KEY_SCOPES if s in asked)


def _key_record(row: Row[Any], **changes: Any) -> ApiKeyRecord:
    """A key's record from its row (scopes are stored space-separated)."""
    values = {**row._asdict(), **changes}
    values["scopes"] = tuple(str(values["scopes"]).split())
    return ApiKeyRecord(**values)
