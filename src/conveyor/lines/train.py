"""The ``train`` line: ingest -> validate -> split -> [tune ->] train candidates -> evaluate ->
gate -> report -> register (champion/challenger, promotion per policy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.config import CandidateConfig, FeaturesConfig, ProjectConfig
from conveyor.contracts import (
    Baseline,
    DatasetVersion,
    Evaluation,
    GateReport,
    LeaderboardRow,
    PartitionedTable,
    TuningSummary,
)
from conveyor.data.target import infer_task, resolve_positive
from conveyor.errors import ConfigError
from conveyor.evaluation import gates as gate_rules
from conveyor.evaluation import metrics
from conveyor.lines._data import data_steps, project_schema
from conveyor.lines._register import register
from conveyor.pipeline import Pipeline, Step
from conveyor.training.distributed import fit_distributed, is_distributed, local_equivalent

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from conveyor.pipeline import StepContext


def build(config: ProjectConfig, base_dir: Path) -> Pipeline:
    """Assemble the train pipeline from conveyor.yaml.

    Raises:
        ConfigError: a required section is missing, candidate names repeat, a gate or a derive
            function is malformed.
    """
    data, training, registry = config.data, config.training, config.registry
    for section, value in (("data", data), ("training", training), ("registry", registry)):
        if value is None:
            raise ConfigError(f"conveyor.yaml: {section}: required by the train pipeline")
    assert data is not None and training is not None and registry is not None
    names = [c.name for c in training.candidates]
    if len(set(names)) != len(names):
        raise ConfigError(f"conveyor.yaml: training.candidates: duplicated names {names}")
    gate_rules.parse_gates(config.evaluation.gates)  # fail on a malformed gate before running
    _check_derive(config.features)
    seed = data.split.seed
    features = config.features.model_dump()
    schema = project_schema(data, base_dir)
    cv = training.tuning.cv if training.tuning is not None else SELECT_CV
    select = config.evaluation.select if len(names) > 1 else "test"  # one candidate: no choice
    uses_folds = training.tuning is not None or select == "cv"

    def fit_params(candidate: CandidateConfig) -> dict[str, Any]:
        """What fitting a candidate depends on, shared by its tune and train steps."""
        return {
            "target": data.target,
            "features": features,
            "candidate": candidate.model_dump(),
            "seed": seed,
        }

    steps = data_steps(
        data, base_dir, schema=schema, task=training.task, folds=cv if uses_folds else 2
    )
    for candidate in training.candidates:
        if is_distributed(candidate):
            steps.append(_distributed_step(candidate, data.partitioned, fit_params(candidate)))
            continue
        inputs = {"train": "train"}
        fit = fit_params(candidate)
        if candidate.search:
            if training.tuning is None:
                raise ConfigError(
                    f"conveyor.yaml: training.candidates[{candidate.name}].search needs a "
                    "training.tuning section (trials, cv)"
                )
            tuning = training.tuning
            steps.append(
                Step(
                    _tune,
                    f"tune_{candidate.name}",
                    inputs={"train": "train"},
                    outputs=(f"tuning_{candidate.name}",),
                    params={
                        **fit,
                        "task": training.task,
                        "positive": data.positive_class,
                        "trials": tuning.trials,
                        "cv": tuning.cv,
                        "metric": tuning.metric or config.evaluation.primary,
                        "workers": tuning.workers,
                        "timeout": tuning.timeout,
                    },
                )
            )
            inputs["tuning"] = f"tuning_{candidate.name}"
        steps.append(
            Step(
                _train,
                f"train_{candidate.name}",
                inputs=inputs,
                outputs=(f"model_{candidate.name}",),
                params=fit,
            )
        )
    steps += [
        Step(
            _evaluate,
            "evaluate",
            inputs={
                "train": "train",
                "test": "test",
                **{f"model_{n}": f"model_{n}" for n in names},
                **{f"tuning_{c.name}": f"tuning_{c.name}" for c in training.candidates if c.search},
            },
            outputs=("model", "evaluation"),
            params={
                "target": data.target,
                "task": training.task,
                "positive": data.positive_class,
                "primary": config.evaluation.primary,
                "select": select,
                "cv": cv,
                "seed": seed,
                "features": features,
                "candidates": {
                    c.name: local_equivalent(c).model_dump() for c in training.candidates
                },
            },
        ),
        Step(
            _gate,
            "gate",
            inputs={"evaluation": "evaluation"},
            outputs=("gates",),
            params={
                "gates": dict(config.evaluation.gates),
                "beat_baseline": config.evaluation.beat_baseline,
            },
        ),
        Step(
            _report,
            "report",
            inputs={
                "model": "model",
                "test": "test",
                "evaluation": "evaluation",
                "gates": "gates",
                "dataset": "dataset",
                **(
                    {"train": "train", "train_parts": "train_parts", "test_parts": "test_parts"}
                    if data.partitioned
                    else {}
                ),
            },
            outputs=("report", "report_html"),
            params={
                "target": data.target,
                "model_name": registry.model,
                "seed": seed,
                "importance": config.evaluation.importance.model_dump(),
            },
        ),
        _profile_step(data.partitioned, data.target, list(config.features.drop)),
        Step(
            register,
            "register",
            inputs={
                "model": "model",
                "test": "test",
                "evaluation": "evaluation",
                "gates": "gates",
                "dataset": "dataset",
                "reference_profile": "reference_profile",
            },
            outputs=("registration",),
            params={
                "model_name": registry.model,
                "target": data.target,
                "positive": data.positive_class,
                "min_improvement": config.evaluation.min_improvement,
                "schema": _signature_rules(schema, data.target),
                "unused_columns": list(config.features.drop),
                "alias": registry.promote.alias,
                "require_approval": registry.promote.require_approval,
            },
        ),
    ]
    return Pipeline(steps, name="train")


def _distributed_step(candidate: CandidateConfig, partitioned: bool, fit: dict[str, Any]) -> Step:
    where = f"conveyor.yaml: training.candidates[{candidate.name}]"
    if not partitioned:
        raise ConfigError(
            f"{where}: {candidate.estimator} trains on partitions: set data.partitioned: true "
            "(or use its in-memory counterpart, e.g. lightgbm.LGBMClassifier)"
        )
    if candidate.search:
        raise ConfigError(
            f"{where}.search: a Dask estimator is not tuned; tune its in-memory counterpart "
            f"({local_equivalent(candidate).estimator}) on the sample and copy the params"
        )
    return Step(
        _train_distributed,
        f"train_{candidate.name}",
        inputs={"train": "train", "train_parts": "train_parts"},
        outputs=(f"model_{candidate.name}",),
        params=fit,
    )


def _train_distributed(
    ctx: StepContext,
    train: pd.DataFrame,
    train_parts: PartitionedTable,
    *,
    target: str,
    features: dict[str, Any],
    candidate: dict[str, Any],
    seed: int,
) -> Any:
    model = fit_distributed(
        ctx.artifacts,
        train_parts,
        train,
        target=target,
        features=FeaturesConfig(**features),
        candidate=CandidateConfig(**candidate),
        seed=seed,
    )
    ctx.log_metrics({f"train.{candidate['name']}.rows": train_parts.rows})
    return model


SELECT_CV = 3
"""Folds of the cross-validation that chooses among candidates when none is tuned."""


def _signature_rules(schema: Any, target: str) -> dict[str, Any]:
    """Per input column, what the contract says: dtype, nullable, categories, range."""
    rules: dict[str, Any] = {}
    for name, spec in schema.columns.items():
        if name == target:
            continue
        rule = {"dtype": spec.dtype, "nullable": spec.rule("nullable")[0]}
        if spec.dtype == "datetime":
            rule["format"] = spec.format
        for check in ("allowed", "min", "max"):
            value = spec.rule(check)[0]
            if value is not None:
                rule[check] = value
        rules[name] = rule
    return rules


def _check_derive(features: FeaturesConfig) -> None:
    from conveyor.features.derive import resolve

    for i, path in enumerate(features.derive):
        resolve(path, where=f"conveyor.yaml: features.derive[{i}]")


def _tune(
    ctx: StepContext,
    train: pd.DataFrame,
    *,
    target: str,
    features: dict[str, Any],
    candidate: dict[str, Any],
    seed: int,
    task: str | None,
    positive: Any,
    trials: int,
    cv: int,
    metric: str,
    workers: int,
    timeout: float | None,
) -> TuningSummary:
    from dataclasses import asdict

    from conveyor.training.tuning import tune

    spec = CandidateConfig(**candidate)
    task = task or infer_task(train[target])
    if task == "classification":
        positive = resolve_positive(train[target].unique(), positive, where="data.positive_class")
    result = tune(
        spec,
        train,
        target=target,
        features=FeaturesConfig(**features),
        trials=trials,
        cv=cv,
        metric=metric,
        task=task,
        positive=positive,
        seed=seed,
        workers=workers,
        timeout=timeout,
    )
    done = [asdict(t) for t in result.trials]
    ctx.metadata.log_trials(ctx.run_id, ctx.step_name, spec.name, done)
    states = [t["state"] for t in done]
    ctx.log_metrics(
        {
            f"tune.{spec.name}.best": result.best_value,
            f"tune.{spec.name}.trials": len(done),
            f"tune.{spec.name}.pruned": states.count("pruned"),
            f"tune.{spec.name}.failed": states.count("failed"),
            f"tune.{spec.name}.kept_configured": float(result.kept_configured),
        }
    )
    return TuningSummary(
        candidate=spec.name,
        metric=result.metric,
        best_value=result.best_value,
        best_params=result.best_params,
        trials=len(done),
    )


def _train(
    train: pd.DataFrame,
    tuning: TuningSummary | None = None,
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
        params=tuning.best_params if tuning else None,
    )


def _evaluate(
    ctx: StepContext,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    target: str,
    task: str | None,
    positive: Any,
    primary: str,
    select: str = "test",
    cv: int = SELECT_CV,
    seed: int = 0,
    features: dict[str, Any] | None = None,
    candidates: dict[str, dict[str, Any]] | None = None,
    **fitted: Any,
) -> tuple[Any, Evaluation]:
    from conveyor.training.select import cv_score, fit_baseline

    task = task or infer_task(train[target])
    if task == "classification":
        positive = resolve_positive(train[target].unique(), positive, where="data.positive_class")
    models = {k: v for k, v in fitted.items() if k.startswith("model_")}
    board: list[LeaderboardRow] = []
    for key, model in sorted(models.items()):
        name = key.removeprefix("model_")
        tuning: TuningSummary | None = fitted.get(f"tuning_{name}")
        scores = metrics.evaluate(model, test, target=target, task=task, positive=positive)
        if primary not in scores:
            raise ConfigError(
                f"evaluation.primary: {primary!r} is not a {task} metric; "
                f"choose from {sorted(scores)}"
            )
        cv_value = None
        if select == "cv":
            if tuning is not None and tuning.metric == primary:
                cv_value = tuning.best_value
            else:
                cv_value = cv_score(
                    CandidateConfig(**(candidates or {})[name]),
                    train,
                    target=target,
                    features=FeaturesConfig(**(features or {})),
                    task=task,
                    positive=positive,
                    metric=primary,
                    cv=cv,
                    seed=seed,
                    params=tuning.best_params if tuning else None,
                )
        board.append(
            LeaderboardRow(
                candidate=name,
                metrics=scores,
                cv=cv_value,
                params=_set_params(model.named_steps["estimator"]),
                tuning=None if tuning is None else tuning.outcome(),
            )
        )
        ctx.log_metrics({f"{name}.{k}": v for k, v in scores.items()})
    sign = 1 if metrics.higher_is_better(primary) else -1
    ranked_by = "cv" if select == "cv" else "test"

    def rank(row: LeaderboardRow) -> tuple[float, str]:
        value = row.cv if ranked_by == "cv" and row.cv is not None else row.metrics[primary]
        return (-sign * value, row.candidate)

    board.sort(key=rank)
    best = board[0]
    ctx.log_metrics({f"test.{k}": v for k, v in best.metrics.items()})
    dummy, strategy = fit_baseline(train, target=target, task=task, metric=primary)
    baseline = metrics.evaluate(dummy, test, target=target, task=task, positive=positive)
    ctx.log_metrics({f"baseline.{k}": v for k, v in baseline.items()})
    X = test.drop(columns=[target])
    chosen = models[f"model_{best.candidate}"]
    if task == "classification" and positive is None:
        positive = list(chosen.classes_)[-1]
    evaluation = Evaluation(
        task=task,
        primary=primary,
        best=best.candidate,
        selected_by=f"{cv}-fold cross-validation on the training split"
        if ranked_by == "cv"
        else "test split"
        if len(board) > 1
        else "only candidate",
        positive=_plain(positive),
        metrics=best.metrics,
        baseline=Baseline(strategy=strategy, metrics=baseline),
        leaderboard=board,
        test_rows=len(test),
        signature={c: str(X[c].dtype) for c in X.columns},
        inputs=[str(c) for c in X.columns],
    )
    return chosen, evaluation


def _profile_step(partitioned: bool, target: str, drop: list[str]) -> Step:
    inputs = {"model": "model", "train": "train", "test": "test", "evaluation": "evaluation"}
    function: Any = _profile
    if partitioned:  # from every row, through mergeable sketches
        from conveyor.lines._partitioned import profile as function

        inputs.update(train_parts="train_parts", test_parts="test_parts")
    return Step(
        function,
        "profile",
        inputs=inputs,
        outputs=("reference_profile",),
        params={"target": target, "drop": drop},
    )


def _profile(
    model: Any,
    train: pd.DataFrame,
    test: pd.DataFrame,
    evaluation: Evaluation,
    *,
    target: str,
    drop: list[str],
) -> dict[str, Any]:
    """The reference profile drift checks compare against: the training features, and the
    model's outputs on the test split (out-of-sample, like served traffic)."""
    from conveyor.monitoring.profile import build_profile

    features = train.drop(columns=[target, *[c for c in drop if c in train.columns]])
    X = test.drop(columns=[target])
    predictions = model.predict(X)
    probabilities = classes = None
    if evaluation.task == "classification" and hasattr(model, "predict_proba"):
        probabilities, classes = model.predict_proba(X), model.classes_
    profile = build_profile(
        features,
        predictions=predictions,
        probabilities=probabilities,
        positive=evaluation.positive,
        task=evaluation.task,
        classes=classes,
    )
    return profile.to_dict()


def _gate(
    ctx: StepContext,
    evaluation: Evaluation,
    *,
    gates: dict[str, str],
    beat_baseline: bool = True,
) -> GateReport:
    results = gate_rules.check_gates(gate_rules.parse_gates(gates), evaluation.metrics)
    baseline = evaluation.baseline
    if beat_baseline and baseline is not None:
        results.append(
            gate_rules.check_baseline(
                evaluation.primary,
                evaluation.metrics,
                baseline.metrics,
                strategy=baseline.strategy,
            )
        )
    passed = all(r.passed for r in results)
    ctx.log_metrics(
        {"gates.passed": float(passed), "gates.failed": sum(not r.passed for r in results)}
    )
    return GateReport(
        passed=passed,
        results=results,
        failed=[r.describe() for r in results if not r.passed],
    )


def _report(
    ctx: StepContext,
    model: Any,
    test: pd.DataFrame,
    evaluation: Evaluation,
    gates: GateReport,
    dataset: DatasetVersion,
    train: pd.DataFrame | None = None,
    train_parts: PartitionedTable | None = None,
    test_parts: PartitionedTable | None = None,
    *,
    target: str,
    model_name: str,
    seed: int,
    importance: dict[str, Any],
) -> tuple[dict[str, Any], bytes]:
    from conveyor.evaluation.diagnostics import diagnose
    from conveyor.evaluation.report import training_report

    diagnostics = diagnose(
        model,
        test,
        target=target,
        task=evaluation.task,
        positive=evaluation.positive,
        seed=seed,
        importance_repeats=importance["repeats"],
        importance_max_rows=importance["max_rows"],
    )
    return training_report(
        run_id=ctx.run_id,
        model_name=model_name,
        dataset=dataset,
        evaluation=evaluation,
        gates=gates,
        diagnostics=diagnostics,
        sample=None
        if train is None or train_parts is None or test_parts is None
        else {
            "train_sample": len(train),
            "train_rows": train_parts.rows,
            "test_sample": len(test),
            "test_rows": test_parts.rows,
        },
    )


def _set_params(estimator: Any) -> dict[str, Any]:
    """The estimator's parameters that differ from its class defaults (configured or tuned):
    the ones worth showing next to its scores."""
    try:
        defaults = type(estimator)().get_params(deep=False)
    except TypeError:  # an estimator with required arguments: show everything
        defaults = {}
    return {
        k: _plain(v)
        for k, v in sorted(estimator.get_params(deep=False).items())
        if k not in defaults or repr(defaults[k]) != repr(v)
    }


def _plain(value: Any) -> Any:
    """JSON-safe parameter values (estimator params may hold objects; classes numpy scalars)."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)
