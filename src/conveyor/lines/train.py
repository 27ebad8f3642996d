"""The ``train`` line: ingest -> validate -> split -> train candidates -> evaluate -> register."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.config import CandidateConfig, FeaturesConfig, ProjectConfig
from conveyor.errors import ConfigError
from conveyor.evaluation import metrics
from conveyor.lines._data import data_steps
from conveyor.pipeline import Pipeline, Step

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from conveyor.pipeline import StepContext


def build(config: ProjectConfig, base_dir: Path) -> Pipeline:
    """Assemble the train pipeline from conveyor.yaml.

    Raises:
        ConfigError: the ``data``, ``training`` or ``registry`` section is missing.
    """
    data, training, registry = config.data, config.training, config.registry
    for section, value in (("data", data), ("training", training), ("registry", registry)):
        if value is None:
            raise ConfigError(f"conveyor.yaml: {section}: required by the train pipeline")
    assert data is not None and training is not None and registry is not None
    steps = data_steps(data, base_dir)
    names = [c.name for c in training.candidates]
    if len(set(names)) != len(names):
        raise ConfigError(f"conveyor.yaml: training.candidates: duplicated names {names}")
    for candidate in training.candidates:
        steps.append(
            Step(
                _train,
                f"train_{candidate.name}",
                inputs={"train": "train"},
                outputs=(f"model_{candidate.name}",),
                params={
                    "target": data.target,
                    "features": config.features.model_dump(),
                    "candidate": candidate.model_dump(),
                    "seed": data.split.seed,
                },
            )
        )
    steps.append(
        Step(
            _evaluate,
            "evaluate",
            inputs={"test": "test", **{f"model_{n}": f"model_{n}" for n in names}},
            outputs=("model", "evaluation"),
            params={
                "target": data.target,
                "task": training.task,
                "positive": data.positive_class,
                "primary": config.evaluation.primary,
            },
        )
    )
    steps.append(
        Step(
            _register,
            "register",
            inputs={"model": "model", "evaluation": "evaluation", "dataset": "dataset"},
            outputs=("registration",),
            params={"model_name": registry.model},
        )
    )
    return Pipeline(steps, name="train")


def _train(
    train: pd.DataFrame,
    *,
    target: str,
    features: dict[str, Any],
    candidate: dict[str, Any],
    seed: int,
) -> Any:
    from conveyor.training.candidates import fit_candidate

    return fit_candidate(
        train,
        target=target,
        features=FeaturesConfig(**features),
        candidate=CandidateConfig(**candidate),
        seed=seed,
    )


def _evaluate(
    ctx: StepContext,
    test: pd.DataFrame,
    *,
    target: str,
    task: str | None,
    positive: Any,
    primary: str,
    **models: Any,
) -> tuple[Any, dict[str, Any]]:
    task = task or metrics.infer_task(test[target])
    board: list[dict[str, Any]] = []
    for key, model in sorted(models.items()):
        name = key.removeprefix("model_")
        scores = metrics.evaluate(model, test, target=target, task=task, positive=positive)
        if primary not in scores:
            raise ConfigError(
                f"evaluation.primary: {primary!r} is not a {task} metric; "
                f"choose from {sorted(scores)}"
            )
        board.append({"candidate": name, "metrics": scores})
        ctx.log_metrics({f"{name}.{k}": v for k, v in scores.items()})
    sign = 1 if metrics.higher_is_better(primary) else -1
    board.sort(key=lambda row: (-sign * row["metrics"][primary], row["candidate"]))
    best = board[0]
    ctx.log_metrics({f"test.{k}": v for k, v in best["metrics"].items()})
    X = test.drop(columns=[target])
    evaluation = {
        "task": task,
        "primary": primary,
        "best": best["candidate"],
        "metrics": best["metrics"],
        "leaderboard": board,
        "test_rows": len(test),
        "signature": {c: str(X[c].dtype) for c in X.columns},
    }
    return models[f"model_{best['candidate']}"], evaluation


def _register(
    ctx: StepContext,
    model: Any,
    evaluation: dict[str, Any],
    dataset: dict[str, Any],
    *,
    model_name: str,
) -> dict[str, Any]:
    run = ctx.metadata.get_run(ctx.run_id)
    record = ctx.metadata.register_model_version(
        model_name,
        digest=ctx.input_digests["model"],
        run_id=ctx.run_id,
        dataset=dataset["fingerprint"],
        metrics=evaluation["metrics"],
        signature={"columns": evaluation["signature"]},
        tags={"candidate": evaluation["best"]},
        git_commit=run.git_commit,
        config_hash=run.config_hash,
        reason=f"best of {len(evaluation['leaderboard'])} candidates on {evaluation['primary']}",
    )
    return {"name": record.name, "version": record.version, "digest": record.digest}
