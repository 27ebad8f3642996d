"""The metadata store by role: what each part of conveyor may ask of it.

:class:`~conveyor.store.metadata.SqlMetadataStore` implements every role; modules depend on the
role they use (the runner on :class:`RunStore`, governance on :class:`RegistryStore`, the server
on :class:`ServingStore`), so what a module can do to the store shows in its signatures, and a
test can hand it anything that fills the role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from conveyor.contracts import StepRecorder

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence

    from conveyor.contracts import ModelSignature
    from conveyor.store.metadata._base import Metrics
    from conveyor.store.metadata.records import (
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
        StepStatus,
    )


@runtime_checkable
class ArtifactIndex(Protocol):
    """Which serializer wrote a recorded artifact (needed to load it)."""

    def artifact_kind(self, digest: str) -> str:
        """The kind of a recorded artifact."""
        ...


@runtime_checkable
class AuditLog(Protocol):
    """The append-only log of who did what, when and why."""

    def append_event(
        self,
        action: str,
        entity: str,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one event."""
        ...

    def list_events(
        self,
        *,
        since: float | None = None,
        entity: str | None = None,
        action: str | None = None,
        last: int | None = None,
    ) -> list[EventRecord]:
        """Events, oldest first."""
        ...


@runtime_checkable
class RunStore(ArtifactIndex, StepRecorder, Protocol):
    """Runs, steps, the step cache, metrics, datasets and tuning trials (the runner's role;
    ``record_dataset`` and ``log_trials`` come from :class:`~conveyor.contracts.StepRecorder`)."""

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
        """Record a new run and its pending steps."""
        ...

    def finish_run(self, run_id: str, status: RunStatus, *, error: str | None = None) -> None:
        """Record how a run ended."""
        ...

    def set_run_status(self, run_id: str, status: RunStatus, *, error: str | None = None) -> None:
        """Set an orchestrated run's status, leaving its steps alone."""
        ...

    def recover_interrupted(self) -> list[str]:
        """Mark runs whose process died as interrupted."""
        ...

    def record_artifacts(self, refs: Iterable[ArtifactRef]) -> None:
        """Record artifacts by digest."""
        ...

    def start_step(
        self, step_id: int, *, cache_key: str, key_parts: Mapping[str, Any] | None = None
    ) -> None:
        """A step started, with its cache key (and the key's parts, for ``--explain``)."""
        ...

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
        """A step succeeded."""
        ...

    def cache_step(
        self,
        step_id: int,
        hit: CacheHit,
        *,
        cache_key: str,
        inputs: Iterable[ArtifactRef],
        key_parts: Mapping[str, Any] | None = None,
    ) -> None:
        """A step was reused from the cache."""
        ...

    def claim_step(
        self, step_id: int, *, seen: StepStatus, seen_started_at: float | None = None
    ) -> bool:
        """Take a step for this process if it is still as seen; forgets an earlier attempt."""
        ...

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
        """A step failed."""
        ...

    def skip_step(self, step_id: int, *, reason: str) -> None:
        """A step was skipped."""
        ...

    def find_cache_hit(self, cache_key: str) -> CacheHit | None:
        """The latest successful execution under ``cache_key``."""
        ...

    def log_metrics(
        self,
        run_id: str,
        metrics: Metrics,
        *,
        step_id: int | None = None,
        iteration: int = 0,
    ) -> None:
        """Record metrics of a run (or one of its steps)."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """One run with its steps."""
        ...

    def run_outputs(self, run_ids: Sequence[str], name: str) -> dict[str, ArtifactRef]:
        """The output called ``name`` of each run that has one."""
        ...

    def list_runs(
        self,
        *,
        limit: int = 20,
        pipeline: str | None = None,
        status: str | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Recent runs, newest first (a page: ``offset``; one status: ``status``)."""
        ...

    def step_key_parts(self, run_id: str) -> list[StepKeyParts]:
        """The recorded cache key parts of a run's steps, in pipeline order."""
        ...

    def previous_key_parts(
        self, pipeline: str, step_name: str, *, before_step_id: int
    ) -> StepKeyParts | None:
        """The latest key parts of ``step_name`` in an earlier run of ``pipeline``."""
        ...

    def list_datasets(self) -> list[DatasetRecord]:
        """Dataset versions."""
        ...

    def list_trials(self, run_id: str) -> list[dict[str, Any]]:
        """A run's tuning trials."""
        ...


@runtime_checkable
class RegistryStore(ArtifactIndex, AuditLog, Protocol):
    """Model versions, statuses and aliases with history (written through governance)."""

    def newest_model_versions(self, per_name: int) -> list[ModelVersionRecord]:
        """The newest versions of every model, at most ``per_name`` each."""
        ...

    def model_version_counts(self) -> dict[str, dict[str, int]]:
        """Model name -> status -> number of versions."""
        ...

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
        """Register the next version of ``name``."""
        ...

    def get_model_version(self, name: str, version: int | None = None) -> ModelVersionRecord:
        """A version, or the latest."""
        ...

    def get_alias(self, name: str, alias: str) -> int:
        """The version an alias points at."""
        ...

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
        """Point an alias at a version."""
        ...

    def rollback_alias(
        self,
        name: str,
        alias: str,
        *,
        to: int | None = None,
        reason: str | None = None,
        holders: Collection[str] | None = None,
    ) -> tuple[int, int]:
        """Move an alias back."""
        ...

    def aliases(self, name: str | None = None) -> dict[tuple[str, str], int]:
        """Current aliases."""
        ...

    def alias_history(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Every move of a model's aliases."""
        ...

    def set_model_status(
        self,
        name: str,
        version: int,
        status: str,
        *,
        reason: str | None = None,
        action: str | None = None,
    ) -> None:
        """Change a version's status."""
        ...

    def list_model_versions(self, name: str | None = None) -> list[ModelVersionRecord]:
        """Registered versions, newest first."""
        ...


@runtime_checkable
class ServingStore(ArtifactIndex, Protocol):
    """API keys and the prediction log (the server's role)."""

    def create_api_key(
        self, name: str, *, key_id: str, salt: str, hashed: str, scopes: Iterable[str] = ...
    ) -> ApiKeyRecord:
        """Record a new key (its hash only) with its scopes (default: predict)."""
        ...

    def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones too."""
        ...

    def revoke_api_key(
        self,
        name_or_id: str,
        *,
        reason: str | None = None,
        by: Literal["name", "id"] | None = None,
    ) -> ApiKeyRecord:
        """Revoke a key."""
        ...

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
        """Record one flushed batch of logged predictions."""
        ...

    def list_prediction_logs(
        self,
        model_name: str,
        *,
        version: int | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> list[PredictionLogRecord]:
        """Logged prediction batches of a model."""
        ...


@runtime_checkable
class MetadataStore(RunStore, RegistryStore, ServingStore, Protocol):
    """Every role at once (what ``open_metadata_store`` returns)."""

    def close(self) -> None:
        """Release the connection pool."""
        ...
