"""Plain, immutable records the metadata store returns (never SQLAlchemy rows)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    """Lifecycle of a run."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    GATED = "gated"


# The executor recorded for a run driven step by step from outside (`conveyor run --step`, a
# cloud pipeline): no one process holds it, so it is never "recovered" as interrupted.
ORCHESTRATED = "orchestrated"


class StepStatus(StrEnum):
    """Lifecycle of one step inside a run."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"

    @property
    def done_ok(self) -> bool:
        """Whether the step's outputs are available."""
        return self in (StepStatus.SUCCEEDED, StepStatus.CACHED)


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """An artifact as a step saw it: dataset name, address and serializer kind."""

    name: str
    digest: str
    kind: str
    size: int = 0


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a run."""

    id: int
    run_id: str
    name: str
    position: int
    status: StepStatus
    cache_key: str | None
    cached_from: int | None
    started_at: float | None
    ended_at: float | None
    error: str | None
    traceback: str | None
    inputs: tuple[ArtifactRef, ...] = ()
    outputs: tuple[ArtifactRef, ...] = ()

    @property
    def duration(self) -> float | None:
        """Seconds the step took, if it ran."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


@dataclass(frozen=True, slots=True)
class StepKeyParts:
    """What one step's cache key was made of (as the runner recorded it), with where it ran.

    Attributes:
        step_id: the step row.
        run_id: the run the step belongs to.
        name: the step's name.
        status: how the step ended (or where it stands).
        cached_from_run: the run whose execution a cached step reused, if cached.
        parts: the recorded key parts (JSON data; see ``conveyor.runner.cache.recorded``).
    """

    step_id: int
    run_id: str
    name: str
    status: StepStatus
    cached_from_run: str | None
    parts: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One execution of a pipeline, with its steps, parameters and metrics."""

    id: str
    pipeline: str
    status: RunStatus
    started_at: float
    ended_at: float | None
    executor: str
    git_commit: str | None
    config_hash: str | None
    host: str
    pid: int
    error: str | None
    steps: tuple[StepRecord, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Seconds the run took, if it ended."""
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A earlier successful execution of a step with the same cache key."""

    step_id: int
    run_id: str
    outputs: tuple[ArtifactRef, ...]


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    """A dataset version: the fingerprint of ingested data, where it came from, who used it."""

    fingerprint: str
    source: str
    n_rows: int
    n_columns: int
    schema_hash: str | None
    digest: str | None
    run_id: str | None
    created_at: float
    models: tuple[str, ...] = ()  # "name:version" of the model versions trained on it


@dataclass(frozen=True, slots=True)
class ModelVersionRecord:
    """A registered model version."""

    name: str
    version: int
    digest: str
    run_id: str | None
    dataset: str | None
    status: str
    metrics: dict[str, float]
    signature: dict[str, Any] | None
    tags: dict[str, str]
    git_commit: str | None
    config_hash: str | None
    reason: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of the append-only audit log."""

    id: int
    at: float
    actor: str
    action: str
    entity: str
    reason: str | None
    details: dict[str, Any]


KEY_ID = re.compile(r"[0-9a-f]{12}")
"""How an API key's public id looks: the one definition (serving makes ids, names may not look
like one)."""


KEY_SCOPES = ("predict", "read", "admin")
"""What an API key may do: ``predict`` (the model server's routes), ``read`` (the UI's pages),
``admin`` (the UI's governed actions). A key holds exactly the scopes it was created with; the
store implies none from another (``conveyor keys create --scope admin`` asks for read too)."""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key: its public id, name, salted hash (never the secret) and scopes."""

    key_id: str
    name: str
    salt: str
    hash: str
    created_at: float
    created_by: str
    revoked_at: float | None
    scopes: tuple[str, ...] = ("predict",)

    @property
    def revoked(self) -> bool:
        """Whether the key was revoked."""
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class PredictionLogRecord:
    """One Parquet partition of the server's prediction log."""

    id: int
    model_name: str
    model_version: int
    digest: str
    n_rows: int
    first_at: float
    last_at: float
    created_at: float
