"""What the runs pages show, shaped from store records: rows, metric tables, the DAG, compare.

Kept apart from the routes so each page's data is a few small, typed, testable functions.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor._text import fmt_seconds
from conveyor.evaluation.metrics import METRICS, higher_is_better
from conveyor.ui.svg import DagEdge, DagNode, TrialPoint, dataflow_edges

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from conveyor.store.metadata.records import RunRecord, StepKeyParts, StepRecord

STATUS_WORDS = {
    "succeeded": "ran and succeeded",
    "cached": "reused from an earlier run (same code, params and inputs)",
    "running": "running now",
    "pending": "waiting for its inputs",
    "failed": "raised an error",
    "skipped": "skipped (an earlier step failed or it was not needed)",
    "interrupted": "the process stopped before it finished",
}
"""What each step status means, for the legend and the boxes' tooltips."""


def fmt_number(value: float | None) -> str:
    """``178`` for whole numbers, ``0.9710`` for scores, ``12,345.7`` for large values."""
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"


def fmt_value(value: Any) -> str:
    """A parameter value as text: JSON for lists, dicts and null; the value otherwise."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def run_duration(run: RunRecord, now: float | None = None) -> float | None:
    """How long the run took, or has been running for."""
    if run.ended_at is not None:
        return run.ended_at - run.started_at
    if run.status == "running":
        return (now or time.time()) - run.started_at
    return None


# -- the runs list --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRow:
    """One line of the runs list."""

    run: RunRecord
    metric: str | None  # the primary metric's name, e.g. "f1_macro"
    score: str  # its value on the test split, formatted, or "-"
    dataset: str | None  # the dataset version's fingerprint
    steps: str  # "12 succeeded, 1 cached"
    duration: float | None


def primary_score(run: RunRecord) -> tuple[str | None, float | None]:
    """The run's primary metric on the test split: ``test.<evaluation.primary>``; else the first
    ``test.*`` metric recorded (a pipeline without evaluation has none)."""
    primary = run.params.get("evaluation.primary")
    if isinstance(primary, str) and f"test.{primary}" in run.metrics:
        return primary, run.metrics[f"test.{primary}"]
    for key, value in run.metrics.items():
        if key.startswith("test."):
            return key.removeprefix("test."), value
    return None, None


def dataset_of(run: RunRecord, by_digest: Mapping[str, str]) -> str | None:
    """The dataset version a run read: the fingerprint recorded for its ingested bytes."""
    for step in run.steps:
        for ref in (*step.outputs, *step.inputs):
            if ref.digest in by_digest:
                return by_digest[ref.digest]
    return None


def step_counts(steps: Iterable[StepRecord]) -> str:
    """``12 succeeded, 1 cached``: how many steps ended each way."""
    counts = Counter(str(s.status) for s in steps)
    return ", ".join(f"{n} {status}" for status, n in counts.most_common()) or "no steps"


def run_row(run: RunRecord, by_digest: Mapping[str, str]) -> RunRow:
    """A list row from a full run record (with params, metrics and step artifacts)."""
    metric, score = primary_score(run)
    return RunRow(
        run=run,
        metric=metric,
        score=fmt_number(score),
        dataset=dataset_of(run, by_digest),
        steps=step_counts(run.steps),
        duration=run_duration(run),
    )


# -- the DAG --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepIO:
    """The dataset names a step reads and writes, where known."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def recorded_io(steps: Iterable[StepRecord]) -> dict[str, StepIO]:
    """Inputs/outputs of the steps that finished (the store records them on completion)."""
    return {
        s.name: StepIO(tuple(r.name for r in s.inputs), tuple(r.name for r in s.outputs))
        for s in steps
        if s.inputs or s.outputs
    }


def key_parts_io(parts: Iterable[StepKeyParts]) -> dict[str, StepIO]:
    """Inputs/outputs of steps that started: their cache key names the datasets they read."""
    out: dict[str, StepIO] = {}
    for p in parts:
        datasets, outputs = p.parts.get("datasets"), p.parts.get("outputs")
        if isinstance(datasets, dict) and isinstance(outputs, list):
            out[p.name] = StepIO(
                tuple(str(v) for v in datasets.values()), tuple(str(v) for v in outputs)
            )
    return out


def dag_nodes(run: RunRecord, now: float | None = None) -> list[DagNode]:
    """One box per step: status, and how long it took (or is taking)."""
    return [_dag_node(s, now or time.time()) for s in run.steps]


def _dag_node(step: StepRecord, now: float) -> DagNode:
    status = str(step.status)
    if status == "cached":
        detail = "reused"
    elif status == "running" and step.started_at is not None:
        detail = f"for {fmt_seconds(now - step.started_at)}"
    elif step.duration is not None:
        detail = fmt_seconds(step.duration)
    else:
        detail = {"pending": "waiting", "skipped": "not run"}.get(status, "-")
    title = f"{step.name}: {STATUS_WORDS.get(status, status)}"
    return DagNode(step.name, status, detail, href=f"#step-{step.name}", title=title)


def dag_edges(run: RunRecord, known: Mapping[str, StepIO]) -> list[DagEdge]:
    """The dataflow between the run's steps, from what is known of each step's datasets."""
    names = [s.name for s in run.steps]
    return dataflow_edges(
        names,
        {n: io.outputs for n, io in known.items()},
        {n: io.inputs for n, io in known.items()},
    )


def missing_io(run: RunRecord, known: Mapping[str, StepIO]) -> bool:
    """Whether some step's datasets are still unknown (it has not run yet, or failed)."""
    return any(s.name not in known for s in run.steps)


# -- metrics --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricMatrix:
    """Metrics sharing names across prefixes (candidates, test, baseline) as one table."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[str, ...]], ...]


ROW_ORDER = {"test": 0, "baseline": 99}
GROUP_TITLES = {
    "test": "Scores on the test split",
    "tune": "Hyper-parameter tuning",
}


def metric_tables(
    metrics: Mapping[str, float],
) -> tuple[list[MetricMatrix], list[tuple[str, str]]]:
    """Group ``prefix.name`` metrics whose prefixes share the same names into matrices
    (``test``/``baseline``/each candidate x ``f1``, ``accuracy``...); the rest stay a list."""
    by_prefix: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        prefix, _, name = key.rpartition(".")
        by_prefix.setdefault(prefix, {})[name] = value
    buckets: dict[tuple[str, ...], list[str]] = {}
    for prefix, named in by_prefix.items():
        buckets.setdefault(tuple(named), []).append(prefix)
    matrices, single = [], []
    for names, prefixes in buckets.items():
        if len(prefixes) >= 2 and len(names) >= 2 and all(prefixes):
            matrices.append(_matrix(names, prefixes, by_prefix))
        else:
            single += [(_key(p, n), fmt_number(by_prefix[p][n])) for p in prefixes for n in names]
    return matrices, single


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _matrix(
    names: tuple[str, ...], prefixes: list[str], values: Mapping[str, Mapping[str, float]]
) -> MetricMatrix:
    ordered = sorted(prefixes, key=lambda p: (ROW_ORDER.get(p, 50), prefixes.index(p)))
    head = next(
        (GROUP_TITLES[p.split(".")[0]] for p in ordered if p.split(".")[0] in GROUP_TITLES), ""
    )
    decimals = {n: any(not float(values[p].get(n, 0)).is_integer() for p in ordered) for n in names}
    rows = tuple(
        (p, tuple(_cell(values[p].get(n), decimals=decimals[n]) for n in names)) for p in ordered
    )
    return MetricMatrix(head or ", ".join(ordered), names, rows)


def _cell(value: float | None, *, decimals: bool) -> str:
    """A matrix cell: a column of scores has four decimals on every row (``1.0000``, not ``1``)."""
    return f"{value:.4f}" if decimals and value is not None else fmt_number(value)


# -- trials ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CandidateTrials:
    """One candidate's tuning: its trials, best score and the chart's points."""

    candidate: str
    trials: tuple[dict[str, Any], ...]
    best: float | None
    best_params: dict[str, Any]
    states: str  # "7 complete, 3 pruned"
    points: tuple[TrialPoint, ...]


def trials_by_candidate(trials: Sequence[Mapping[str, Any]], metric: str) -> list[CandidateTrials]:
    """Group a run's trials per candidate, with the best complete trial of each."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for trial in trials:
        grouped.setdefault(str(trial["candidate"]), []).append(trial)
    return [_candidate(name, rows, metric) for name, rows in grouped.items()]


def _candidate(name: str, rows: list[Mapping[str, Any]], metric: str) -> CandidateTrials:
    scored = [r for r in rows if r.get("value") is not None and r.get("state") == "complete"]
    pick = max if higher_is_better(metric) else min
    best = pick(scored, key=lambda r: float(r["value"])) if scored else None
    states = Counter(str(r.get("state")) for r in rows)
    return CandidateTrials(
        candidate=name,
        trials=tuple(dict(r) for r in rows),
        best=None if best is None else float(best["value"]),
        best_params=dict(best.get("params") or {}) if best else {},
        states=", ".join(f"{n} {s}" for s, n in states.most_common()),
        points=tuple(
            TrialPoint(int(r["number"]), str(r.get("state")), _float(r.get("value"))) for r in rows
        ),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# -- compare --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompareRow:
    """One param or metric across the compared runs."""

    key: str
    values: tuple[str, ...]
    differs: bool
    best: int | None = None  # index of the best run (metrics only)


def compare_params(runs: Sequence[RunRecord]) -> list[CompareRow]:
    """Every parameter, and whether its value differs between the runs."""
    keys = sorted({k for r in runs for k in r.params})
    rows = []
    for key in keys:
        values = tuple(fmt_value(r.params[key]) if key in r.params else "(not set)" for r in runs)
        rows.append(CompareRow(key, values, differs=len(set(values)) > 1))
    return rows


def compare_metrics(runs: Sequence[RunRecord]) -> list[CompareRow]:
    """Every metric side by side, the best run marked where the values differ."""
    keys = list(dict.fromkeys(k for r in runs for k in r.metrics))
    rows = []
    for key in keys:
        raw = [r.metrics.get(key) for r in runs]
        shown = tuple(fmt_number(v) for v in raw)
        differs = len(set(shown)) > 1
        rows.append(CompareRow(key, shown, differs, _best(key, raw) if differs else None))
    return rows


SCORES = frozenset(name for names in METRICS.values() for name in names) | {"best"}
"""Metric names where "best" means something (not counts such as rows or trials)."""


def _best(key: str, values: Sequence[float | None]) -> int | None:
    """The index of the single best value of a score metric; None on a tie or for counts."""
    name = key.rpartition(".")[2]
    present = [(v, i) for i, v in enumerate(values) if v is not None]
    if name not in SCORES or len({v for v, _ in present}) < 2:
        return None
    best = (max if higher_is_better(name) else min)(v for v, _ in present)
    winners = [i for v, i in present if v == best]
    return winners[0] if len(winners) == 1 else None


def chart_metrics(runs: Sequence[RunRecord], *, limit: int = 12) -> list[str]:
    """The metrics for the bar chart: the test scores at least two runs have (a failed run has
    none), else the first ``limit`` metrics every run has."""
    keys = list(dict.fromkeys(k for r in runs for k in r.metrics))
    test = [k for k in keys if k.startswith("test.") and sum(k in r.metrics for r in runs) >= 2]
    shared = [k for k in keys if all(k in r.metrics for r in runs)]
    return (test or shared)[:limit]
