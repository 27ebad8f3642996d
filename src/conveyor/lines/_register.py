"""The register step: champion/challenger, then a model version with its decision, and the alias
moved when policy allows. Gate failures register the version as rejected, then fail the run as
``gated``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.contracts import (
    CANDIDATE_TAG,
    REFERENCE_PROFILE_TAG,
    ColumnSignature,
    DatasetVersion,
    Evaluation,
    GateReport,
    ModelSignature,
    ModelStatus,
    Registration,
)
from conveyor.errors import ConveyorError, GateFailedError, ModelNotFoundError
from conveyor.evaluation import champion, metrics
from conveyor.registry import governance, versions
from conveyor.store.metadata import MetadataStore

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.pipeline import StepContext


def register(
    ctx: StepContext,
    model: Any,
    test: pd.DataFrame,
    evaluation: Evaluation,
    gates: GateReport,
    dataset: DatasetVersion,
    reference_profile: dict[str, Any] | None = None,
    *,
    model_name: str,
    target: str,
    positive: Any,
    min_improvement: float,
    alias: str,
    require_approval: bool,
    schema: dict[str, Any] | None = None,
    unused_columns: list[str] | None = None,
) -> Registration:
    """Register the best model; promote it to ``alias`` when gates pass and it beats the champion.

    Raises:
        GateFailedError: after registering the version as rejected, when a gate failed.
    """
    store = _store(ctx)
    primary = evaluation.primary
    score = evaluation.score
    incumbent, incumbent_score = _champion(
        ctx,
        store,
        model_name,
        alias,
        test,
        target=target,
        task=evaluation.task,
        positive=evaluation.positive if evaluation.positive is not None else positive,
        metric=primary,
    )
    decision = champion.decide(
        score,
        incumbent_score,
        metric=primary,
        min_improvement=min_improvement,
        champion_version=incumbent,
    )
    if not gates.passed:
        status, reason = ModelStatus.REJECTED, "failed gates: " + "; ".join(gates.failed)
    elif not decision.promote:
        status, reason = ModelStatus.REJECTED, decision.reason
    elif require_approval:
        status, reason = ModelStatus.CANDIDATE, f"{decision.reason}; waiting for approval"
    else:
        status, reason = ModelStatus.APPROVED, decision.reason
    promoted = status in governance.ALIAS_HOLDERS
    run = store.get_run(ctx.run_id)
    tags = {CANDIDATE_TAG: evaluation.best}
    if reference_profile is not None:
        tags[REFERENCE_PROFILE_TAG] = ctx.input_digests["reference_profile"]
    record = governance.register(
        store,
        model_name,
        digest=ctx.input_digests["model"],
        run_id=ctx.run_id,
        dataset=dataset.fingerprint,
        metrics=evaluation.metrics,
        signature=_signature(evaluation, schema or {}, target, unused_columns or []),
        tags=tags,
        git_commit=run.git_commit,
        config_hash=run.config_hash,
        status=status,
        reason=reason,
        alias=alias if promoted else None,  # one transaction with the version
    )
    ctx.log_metrics(
        {
            "decision.promoted": float(promoted),
            "decision.challenger": score,
            **({"decision.champion": incumbent_score} if incumbent_score is not None else {}),
        }
    )
    registration = Registration(
        name=record.name,
        version=record.version,
        digest=record.digest,
        status=status,
        reason=reason,
        alias=alias if promoted else None,
        decision=decision,
    )
    if not gates.passed:
        ctx.attach("rejection", registration)  # kept although the step fails
        raise GateFailedError(
            f"{model_name}:{record.version} {reason}; registered as rejected, nothing promoted"
        )
    return registration


def _store(ctx: StepContext) -> MetadataStore:
    """The run's store in every role (the register step reads runs and writes the registry)."""
    store = ctx.metadata
    if not isinstance(store, MetadataStore):
        raise TypeError(f"the register step needs a full metadata store, got {type(store)}")
    return store


def _signature(
    evaluation: Evaluation, schema: dict[str, Any], target: str, unused: list[str]
) -> ModelSignature:
    """The model's inputs: names and dtypes as trained, with the schema's categories and
    ranges (what serving validates requests against); ``unused`` columns (ids the features
    drop) are optional when serving."""
    columns = {
        name: ColumnSignature.model_validate(
            {**schema.get(name, {"dtype": trained}), "trained_dtype": trained}
        )
        for name, trained in evaluation.signature.items()
    }
    return ModelSignature(
        columns=columns,
        task=evaluation.task,
        target=target,
        unused=[c for c in unused if c in columns],
        order=evaluation.inputs,
    )


def _champion(
    ctx: StepContext,
    store: MetadataStore,
    name: str,
    alias: str,
    test: pd.DataFrame,
    *,
    target: str,
    task: str,
    positive: Any,
    metric: str,
) -> tuple[int | None, float | None]:
    """The current champion's version and its score on this test set (None when absent or it
    cannot score these data, e.g. after a schema change)."""
    try:
        version = store.get_alias(name, alias)
    except ModelNotFoundError:
        return None, None
    try:
        incumbent = versions.load(store, ctx.artifacts, f"{name}:{version}")
        scores = metrics.evaluate(incumbent, test, target=target, task=task, positive=positive)
    except (ConveyorError, ValueError, KeyError, TypeError):
        return version, None
    return version, scores.get(metric)
