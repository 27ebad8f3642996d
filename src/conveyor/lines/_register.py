"""The register step: champion/challenger, then a model version with its decision, and the alias
moved when policy allows. Gate failures register the version as rejected, then fail the run as
``gated``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, GateFailedError, ModelNotFoundError
from conveyor.evaluation import champion, metrics
from conveyor.registry import versions

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.pipeline import StepContext


def register(
    ctx: StepContext,
    model: Any,
    test: pd.DataFrame,
    evaluation: dict[str, Any],
    gates: dict[str, Any],
    dataset: dict[str, Any],
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
) -> dict[str, Any]:
    """Register the best model; promote it to ``alias`` when gates pass and it beats the champion.

    Raises:
        GateFailedError: after registering the version as rejected, when a gate failed.
    """
    primary = evaluation["primary"]
    score = evaluation["metrics"][primary]
    incumbent, incumbent_score = _champion(
        ctx,
        model_name,
        alias,
        test,
        target=target,
        task=evaluation["task"],
        positive=evaluation.get("positive", positive),
        metric=primary,
    )
    decision = champion.decide(
        score,
        incumbent_score,
        metric=primary,
        min_improvement=min_improvement,
        champion_version=incumbent,
    )
    if not gates["passed"]:
        status, reason = "rejected", "failed gates: " + "; ".join(gates["failed"])
    elif not decision.promote:
        status, reason = "rejected", decision.reason
    elif require_approval:
        status, reason = "candidate", f"{decision.reason}; waiting for approval"
    else:
        status, reason = "approved", decision.reason
    run = ctx.metadata.get_run(ctx.run_id)
    record = ctx.metadata.register_model_version(
        model_name,
        digest=ctx.input_digests["model"],
        run_id=ctx.run_id,
        dataset=dataset["fingerprint"],
        metrics=evaluation["metrics"],
        signature=_signature(evaluation, schema or {}, target, unused_columns or []),
        tags={
            "candidate": evaluation["best"],
            **(
                {"reference_profile": ctx.input_digests["reference_profile"]}
                if reference_profile is not None
                else {}
            ),
        },
        git_commit=run.git_commit,
        config_hash=run.config_hash,
        status=status,
        reason=reason,
        alias=alias if status == "approved" else None,  # one transaction with the version
    )
    promoted = status == "approved"
    ctx.log_metrics(
        {
            "decision.promoted": float(promoted),
            "decision.challenger": score,
            **({"decision.champion": incumbent_score} if incumbent_score is not None else {}),
        }
    )
    registration = {
        "name": record.name,
        "version": record.version,
        "digest": record.digest,
        "status": status,
        "reason": reason,
        "alias": alias if promoted else None,
        "decision": decision.to_dict(),
    }
    if not gates["passed"]:
        ctx.attach("rejection", registration)  # kept although the step fails
        raise GateFailedError(
            f"{model_name}:{record.version} {reason}; registered as rejected, nothing promoted"
        )
    return registration


def _signature(
    evaluation: dict[str, Any], schema: dict[str, Any], target: str, unused: list[str]
) -> dict[str, Any]:
    """The model's inputs: names and dtypes as trained, with the schema's categories and
    ranges (what serving validates requests against); ``unused`` columns (ids the features
    drop) are optional when serving."""
    columns = {
        name: {**schema.get(name, {"dtype": trained}), "trained_dtype": trained}
        for name, trained in evaluation["signature"].items()
    }
    return {
        "columns": columns,
        "task": evaluation["task"],
        "target": target,
        "unused": [c for c in unused if c in columns],
    }


def _champion(
    ctx: StepContext,
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
        version = ctx.metadata.get_alias(name, alias)
    except ModelNotFoundError:
        return None, None
    try:
        incumbent = versions.load(ctx.metadata, ctx.artifacts, f"{name}:{version}")
        scores = metrics.evaluate(incumbent, test, target=target, task=task, positive=positive)
    except (ConveyorError, ValueError, KeyError, TypeError):
        return version, None
    return version, scores.get(metric)
