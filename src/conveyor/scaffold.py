"""``conveyor init --from``: a project that trains with no edits, from any table and its target.

The table is read once. Each column gets a role (:mod:`conveyor.data.roles`), the target a task,
and the line a budget that fits the table's size: candidates, tuning trials, folds, primary
metric. Every choice is written into conveyor.yaml with a comment that says why, so the user can
change it; the contract goes to schema.yaml.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor import _yaml
from conveyor._text import short_list, short_mapping
from conveyor.config import SourceConfig, load_config
from conveyor.data import sources
from conveyor.data.roles import HIGH_CARDINALITY, ColumnRole, column_roles
from conveyor.data.schema import infer_schema, parse_schema
from conveyor.data.target import infer_task, resolve_positive
from conveyor.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    from collections.abc import Collection

    import pandas as pd

__all__ = ["Budget", "Plan", "budget_for", "plan_project", "render_config", "write_project"]

TEST_SIZE = 0.2
_POSITIVE_WORDS = ("1", "true", "yes", "y", "positive", "pos", "t")


@dataclass(frozen=True)
class Budget:
    """How hard to search, for a table of this size."""

    trials: int
    cv: int
    workers: int
    forest: bool  # small enough for an untuned random forest candidate
    reason: str
    timeout: int | None = None  # seconds of tuning per candidate


def budget_for(rows: int, *, classes: int = 2) -> Budget:
    """Tuning effort by table size: small tables get more folds (each fold is cheap and a single
    split is noisy), big ones fewer trials and a time limit, so a run stays in minutes.

    A multiclass boosted model grows a tree per class per round, so the size that counts is
    ``rows x classes`` beyond two classes.
    """
    work = rows * (classes if classes > 2 else 1)
    size = f"{rows:,} rows" + (f" x {classes} classes" if classes > 2 else "")
    forest = rows < 20_000
    if work < 1_000:
        return Budget(10, 5, 1, forest, f"{size}: 5 folds (small data is noisy), 10 trials")
    if work < 10_000:
        return Budget(10, 3, 2, forest, f"{size}: 3 folds, 10 trials, 2 at a time")
    if work < 200_000:
        return Budget(6, 3, 2, forest, f"{size}: 3 folds, 6 trials, at most 2 min a candidate", 120)
    return Budget(4, 3, 2, False, f"{size}: 3 folds, 4 trials, at most 5 min a candidate", 300)


@dataclass
class Plan:
    """Everything ``init --from`` decided, and why."""

    target: str
    task: str
    rows: int
    columns: int
    roles: list[ColumnRole]
    budget: Budget
    primary: str
    classes: list[Any] = field(default_factory=list)
    positive: Any = None
    positive_reason: str = ""
    rare_classes: list[Any] = field(default_factory=list)
    target_missing: int = 0

    @property
    def dropped(self) -> list[ColumnRole]:
        """Columns the model leaves out."""
        return [r for r in self.roles if r.dropped]

    @property
    def kind(self) -> str:
        """``binary``, ``multiclass`` or ``regression``."""
        if self.task == "regression":
            return "regression"
        return "binary" if len(self.classes) - len(self.rare_classes) == 2 else "multiclass"


def plan_project(
    df: pd.DataFrame,
    *,
    target: str,
    task: str | None = None,
    positive: Any = None,
    ids: Collection[str] = (),
) -> Plan:
    """Decide roles, task, classes, budget and metric for ``df``.

    Raises:
        ConfigError: ``target`` or an ``ids`` column is not in the table, or ``task`` is unknown.
        DataValidationError: the target has no values, one class, or ``positive`` is not a class.
    """
    if target not in df.columns:
        raise ConfigError(
            f"--target: {target!r} is not a column; columns: {short_list(df.columns, limit=12)}"
        )
    for name in ids:
        if name not in df.columns:
            raise ConfigError(f"--id: {name!r} is not a column")
    if task not in (None, "classification", "regression"):
        raise ConfigError(f"--task: {task!r}: choose classification or regression")
    y = df[target].dropna()
    if y.empty:
        raise DataValidationError(f"target {target!r} has no values")
    task = task or infer_task(y)
    budget = budget_for(len(y), classes=y.nunique() if task == "classification" else 1)
    plan = Plan(
        target=target,
        task=task,
        rows=len(df),
        columns=len(df.columns),
        roles=column_roles(df, target=target, ids=ids),
        budget=budget,
        primary="r2",
        target_missing=int(df[target].isna().sum()),
    )
    if task == "regression":
        return plan
    counts = y.value_counts()
    plan.classes = list(counts.index)
    # a class needs a row in every fold of the training split, and one in the test split
    need = math.ceil(budget.cv / (1 - TEST_SIZE)) + 1
    plan.rare_classes = [c for c, n in counts.items() if n < need]
    kept = [c for c in plan.classes if c not in plan.rare_classes]
    if len(kept) < 2:
        raise DataValidationError(
            f"target {target!r} needs at least two classes with {need}+ rows each; it has "
            f"{short_mapping(counts.to_dict())}"
        )
    plan.primary = "f1" if len(kept) == 2 else "f1_macro"
    if len(kept) == 2:
        plan.positive, plan.positive_reason = _positive(kept, counts, positive)
    elif positive is not None:
        raise ConfigError(f"--positive: {target!r} has {len(kept)} classes; binary targets only")
    return plan


def _positive(classes: list[Any], counts: pd.Series, given: Any) -> tuple[Any, str]:
    if given is not None:
        return resolve_positive(classes, given, where="--positive"), "given with --positive"
    for value in classes:
        if str(value).strip().lower() in _POSITIVE_WORDS:
            return value, "its name says so; f1, precision and recall are about it"
    rarer = min(classes, key=lambda c: (counts[c], str(c)))
    return rarer, "the rarer class; f1, precision and recall are about it"


def write_project(
    directory: Path,
    source: SourceConfig,
    *,
    target: str,
    task: str | None = None,
    positive: Any = None,
    ids: Collection[str] = (),
) -> tuple[Plan, list[Path]]:
    """Read the table, plan, and write conveyor.yaml and schema.yaml into ``directory``.

    Returns:
        The plan and the files written.

    Raises:
        ConfigError: bad arguments (see :func:`plan_project`), or the written config does not
            load (a bug: it is checked before returning).
        DataValidationError: the source cannot be read, or the target cannot be learnt.
    """
    directory.mkdir(parents=True, exist_ok=True)
    df = sources.load(source, directory)
    plan = plan_project(df, target=target, task=task, positive=positive, ids=ids)
    name = directory.resolve().name or "project"
    config_path, schema_path = directory / "conveyor.yaml", directory / "schema.yaml"
    schema_path.write_text(render_schema(df, plan, origin=_origin(source)), encoding="utf-8")
    config_path.write_text(render_config(plan, name=name, source=source), encoding="utf-8")
    load_config(config_path)  # what we wrote must load: fail here, not at the first run
    return plan, [config_path, schema_path]


def render_schema(df: pd.DataFrame, plan: Plan, *, origin: str) -> str:
    """schema.yaml: the inferred types, nullability and categories. Observed numeric ranges are
    left out: new data beyond them is normal, not an error."""
    spec = infer_schema(df)
    roles = {r.name: r for r in plan.roles}
    for name, column in spec["columns"].items():
        column.pop("min", None)
        column.pop("max", None)
        role = roles[name]
        if role.kind == "datetime":
            column.clear()
            column.update(dtype="datetime", format=role.date_format or "ISO8601")
            column["nullable"] = bool(df[name].isna().any())
        if role.kind in ("id", "text") and column.get("dtype") == "category":
            column["dtype"] = "string"
            column.pop("allowed", None)
    target = spec["columns"][plan.target]
    if plan.task == "classification":
        kept = [c for c in plan.classes if c not in plan.rare_classes]
        if target.get("dtype") in ("string", "category"):
            target["dtype"] = "category"
            target["allowed"] = sorted(str(c) for c in kept)
        elif plan.rare_classes:
            target["allowed"] = sorted(_plain(c) for c in kept)
        if plan.rare_classes:
            target["allowed"] = {"value": target["allowed"], "severity": "drop"}
    spec["table"].pop("primary_key", None)  # duplicates in an id column are the user's call
    parse_schema(spec, source="schema.yaml")
    head = (
        f"# schema.yaml: the data contract, inferred by `conveyor init --from` from {origin} "
        f"({plan.rows:,} rows).\n# Review it: types, nullability, categories. Checks: nullable "
        "unique min max allowed regex, each with a severity (error, warn, drop, fix).\n"
    )
    return head + _yaml.dump(spec)


def render_config(plan: Plan, *, name: str, source: SourceConfig) -> str:
    """conveyor.yaml text: every choice with a comment saying why."""
    b = plan.budget
    lines = [
        f"# conveyor project, written by `conveyor init --from` from {_origin(source)}",
        f"# ({plan.rows:,} rows x {plan.columns} columns; target {plan.target!r}, "
        f"{plan.kind}). Each choice says why: change any of them.",
        f"project: {_j(name)}",
        'store: {metadata: "sqlite:///.conveyor/conveyor.db", artifacts: .conveyor/artifacts}',
        "data:",
        f"  source: {_flow({'type': source.type, **source.model_dump(exclude_defaults=True)})}",
        "  schema: schema.yaml                        # the contract: types, categories, nulls",
        f"  target: {_j(plan.target)}",
    ]
    if plan.positive is not None:
        lines.append(f"  positive_class: {_j(_plain(plan.positive))}   # {plan.positive_reason}")
    split_note = (
        "stratified on the classes"
        if plan.task == "classification"
        else "stratified on quantile bins of the target"
    )
    lines.append(f"  split: {{test_size: {TEST_SIZE}, stratify: true, seed: 42}}   # {split_note}")
    lines += _features(plan)
    lines += _training(plan, b)
    lines += [
        "evaluation:",
        f"  primary: {plan.primary}   # {_PRIMARY_WHY[plan.kind]}",
        "  beat_baseline: true   # reject a model no better than "
        + ("the most frequent class" if plan.task == "classification" else "the training mean"),
        "  select: cv            # choose the candidate by cross-validation, not on the test",
        "  gates: {}             # add absolute floors when you know them, e.g. "
        + ('{f1: ">= 0.7"}' if plan.task == "classification" else '{r2: ">= 0.5"}'),
        *_importance(plan),
        f"registry: {{model: {_j(f'{name}-model')}}}",
    ]
    notes = _notes(plan)
    if notes:
        lines += ["", "# What init noticed:", *[f"#  - {note}" for note in notes]]
    return "\n".join(lines) + "\n"


WIDE = 30
"""More feature columns than this: fewer permutation-importance shuffles per column."""


def _importance(plan: Plan) -> list[str]:
    features = sum(1 for r in plan.roles if not r.dropped and r.kind != "target")
    if features <= WIDE:
        return []
    return [
        f"  importance: {{repeats: 2}}   # {features} feature columns: 2 shuffles each (not 5) "
        "keep the report step short"
    ]


_PRIMARY_WHY = {
    "binary": "F1 of the positive class: robust to class imbalance, unlike accuracy",
    "multiclass": "F1 averaged over classes: every class counts, however rare",
    "regression": "R2: the share of the target's variance explained (1 is perfect, 0 the mean)",
}


def _features(plan: Plan) -> list[str]:
    dropped = plan.dropped
    lines = ["features:"]
    if dropped:
        lines.append(f"  drop: {_j([r.name for r in dropped])}")
        lines += [f"  #   {r.name}: {r.reason}" for r in dropped]
    else:
        lines.append("  drop: []   # every column is a feature")
    lines.append("  numeric: {impute: median, scale: standard}")
    wide = [r for r in plan.roles if r.kind == "category" and r.distinct > HIGH_CARDINALITY]
    if wide:
        names = short_list([r.name for r in wide], quote=False)
        lines.append(
            "  categorical: {impute: most_frequent, encode: onehot, max_categories: 30}   "
            f"# {names}: many values, the rarest pooled"
        )
    else:
        lines.append("  categorical: {impute: most_frequent, encode: onehot}")
    dates = [r.name for r in plan.roles if r.kind == "datetime"]
    if dates:
        lines.append(
            f"  datetime: {{parts: [year, month, day, dayofweek]}}   # {short_list(dates)}"
        )
    return lines


def _training(plan: Plan, b: Budget) -> list[str]:
    regression = plan.task == "regression"
    suffix = "Regressor" if regression else "Classifier"
    linear = (
        "    - {name: ridge, estimator: sklearn.linear_model.Ridge, "
        "search: {alpha: {low: 0.001, high: 1000.0, log: true}}}"
        if regression
        else "    - {name: logreg, estimator: sklearn.linear_model.LogisticRegression, "
        "params: {max_iter: 2000}, search: {C: {low: 0.01, high: 100.0, log: true}}}"
    )
    lines = [
        "training:",
        f"  task: {plan.task}   # {_task_why(plan)}",
        "  candidates:",
        linear + "   # linear: fast, a strong floor",
        "    - name: hgb                                 # gradient-boosted trees: usually best",
        f"      estimator: sklearn.ensemble.HistGradientBoosting{suffix}",
        "      search: {learning_rate: {low: 0.03, high: 0.3, log: true}, "
        "max_leaf_nodes: [7, 15, 31, 63], min_samples_leaf: [5, 10, 20, 40], "
        "l2_regularization: [0.0, 0.01, 0.1, 1.0]}",
    ]
    if b.forest:
        lines.append(
            f"    - {{name: forest, estimator: sklearn.ensemble.RandomForest{suffix}, "
            "params: {n_estimators: 200, min_samples_leaf: 2}}   # strong on small tables"
        )
    limit = f", timeout: {b.timeout}" if b.timeout else ""
    lines.append(
        f"  tuning: {{trials: {b.trials}, cv: {b.cv}, workers: {b.workers}{limit}}}   # {b.reason}"
    )
    return lines


def _task_why(plan: Plan) -> str:
    if plan.task == "regression":
        return "a number with many values"
    shown = short_list([_plain(c) for c in plan.classes], limit=6)
    return f"{len(plan.classes)} classes: {shown}"


def _notes(plan: Plan) -> list[str]:
    notes = []
    if plan.target_missing:
        notes.append(
            f"{plan.target_missing:,} rows have no {plan.target!r}: validation drops them "
            "(counted in the run's validation report)"
        )
    if plan.rare_classes:
        notes.append(
            f"classes with too few rows to cross-validate are dropped by schema.yaml: "
            f"{short_list([_plain(c) for c in plan.rare_classes])}"
        )
    texts = [r.name for r in plan.roles if r.kind == "text"]
    if texts:
        notes.append(
            f"free-text columns are left out ({short_list(texts)}): add a derive function "
            "(features.derive) to turn them into features"
        )
    return notes


def _origin(source: SourceConfig) -> str:
    if source.path:
        return Path(source.path).name
    if source.type == "sql":
        return f"sql {source.table or 'query'}"
    return f"mongodb {source.database}.{source.collection}"


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _j(value: Any) -> str:
    """A YAML flow value (JSON is YAML 1.2): strings quoted, so ``yes`` stays text."""
    return json.dumps(_plain(value), ensure_ascii=False)


def _flow(mapping: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_j(v)}" for k, v in mapping.items()) + "}"
