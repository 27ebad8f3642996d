"""The evaluation report of a training run: deterministic JSON plus a self-contained HTML page."""

from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING, Any

from conveyor._version import __version__
from conveyor.evaluation.diagnostics import to_jsonable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from conveyor.contracts import DatasetVersion, Evaluation, GateReport

__all__ = ["REQUIRED_KEYS", "build_report", "training_report"]

REQUIRED_KEYS = ("run_id", "model_name", "task")
"""Payload keys without which there is no report; every other key may be missing."""

_TEMPLATE = "report.html.j2"

_BASELINE_STRATEGIES = {
    "most_frequent": "most frequent class",
    "prior": "class prior",
    "stratified": "random, stratified",
    "uniform": "random, uniform",
    "mean": "mean",
    "median": "median",
    "quantile": "quantile",
    "constant": "constant",
}
_REGRESSION_HEADLINE = ("mae", "rmse", "r2")
"""Regression shows these beside the primary metric: errors in the target's unit, and R2."""


def build_report(payload: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Build the JSON report and the HTML page of one training run.

    The JSON report is ``payload`` made JSON data (see
    :func:`~conveyor.evaluation.diagnostics.to_jsonable`) plus ``generated_by``
    (``"conveyor <version>"``). It holds no timestamp, so the same payload always gives the same
    report. The HTML is one UTF-8 page with inline CSS and the figures embedded as base64 PNG; it
    loads nothing from anywhere (its Content-Security-Policy forbids it), so it opens offline.
    Every payload string is HTML-escaped.

    Args:
        payload: the run, with keys

            - ``run_id`` (str, required): the pipeline run.
            - ``model_name`` (str, required): the registered model name.
            - ``task`` (str, required): ``classification`` or ``regression``.
            - ``data``: ``{fingerprint, source, rows, columns}`` of the training data
              (``columns``: a count or a list of names).
            - ``primary``: the metric that ranks candidates.
            - ``leaderboard``: one ``{candidate, metrics, params, tuning}`` per candidate, in
              rank order; ``tuning`` is ``{trials, best_value}`` or ``None``.
            - ``best``: the winning candidate's name.
            - ``metrics``: the winner's test metrics, ``{name: value}``.
            - ``gates``: one ``{metric, rule, value, passed}`` per quality gate.
            - ``decision``: what happened to the model (e.g. ``"registered"``), or ``None``.
            - ``diagnostics``: the output of
              :func:`~conveyor.evaluation.diagnostics.diagnose`, or ``None``.
            - ``baseline``: ``{strategy, metrics}`` of a dummy model scored on the same test
              split, or ``None``; ``strategy`` is the dummy's (``most_frequent``, ``prior``,
              ``mean``, ``median``), ``metrics`` uses the candidates' metric names. It is shown
              as the last leaderboard row and beside the winner's headline metrics.

    Returns:
        ``(report, html)``: the JSON report dict and the page as UTF-8 bytes.

    Raises:
        ValueError: a required key is missing.
        TypeError: a payload value is not JSON data (the message gives its path).
    """
    missing = [key for key in REQUIRED_KEYS if payload.get(key) in (None, "")]
    if missing:
        raise ValueError(f"report payload is missing {', '.join(missing)}")
    report: dict[str, Any] = to_jsonable(
        {**payload, "generated_by": f"conveyor {__version__}"}, where="payload"
    )
    html = _environment().get_template(_TEMPLATE).render(**_context(report))
    return report, html.encode("utf-8")


def training_report(
    *,
    run_id: str,
    model_name: str,
    dataset: DatasetVersion,
    evaluation: Evaluation,
    gates: GateReport,
    diagnostics: Mapping[str, Any] | None,
    sample: Mapping[str, int] | None = None,
) -> tuple[dict[str, Any], bytes]:
    """The report of a train-line run, from its typed stage outputs (see :func:`build_report`).

    ``diagnostics`` is the output of :func:`~conveyor.evaluation.diagnostics.diagnose`;
    ``sample`` (partitioned data) says how many rows of each side the in-memory fits and the
    metrics saw: ``{train_sample, train_rows, test_sample, test_rows}``.
    """
    extra = {"sample": dict(sample)} if sample else {}
    return build_report(
        {
            **extra,
            "run_id": run_id,
            "model_name": model_name,
            "data": dataset.model_dump(include={"fingerprint", "source", "rows", "columns"}),
            "task": evaluation.task,
            "primary": evaluation.primary,
            "leaderboard": [row.to_json() for row in evaluation.leaderboard],
            "best": evaluation.best,
            "metrics": evaluation.metrics,
            "gates": [g.to_json() for g in gates.results],
            "baseline": evaluation.baseline.to_json() if evaluation.baseline else None,
            "selected_by": evaluation.selected_by,
            "decision": None,
            "diagnostics": diagnostics,
        }
    )


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("conveyor.evaluation", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,  # a typo in the template fails loudly, not silently blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    return env


def _context(report: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the template shows, each key present, arranged and formatted for display."""
    from conveyor.evaluation.plots import plots_for

    data = report.get("data") or {}
    columns = data.get("columns")
    primary, best = report.get("primary"), report.get("best")
    diagnostics = report.get("diagnostics") or {}
    positive = diagnostics.get("positive")
    gates = [
        {key: gate.get(key) for key in ("metric", "rule", "value", "passed")}
        for gate in report.get("gates") or []
    ]
    baseline = _baseline(report.get("baseline"))
    metrics = report.get("metrics") or {}
    leaderboard = [
        {
            "candidate": row.get("candidate"),
            "metrics": row.get("metrics") or {},
            "params": row.get("params") or {},
            "tuning": row.get("tuning") or None,
            "is_best": best is not None and row.get("candidate") == best,
        }
        for row in report.get("leaderboard") or []
    ]
    return {
        "model_name": report["model_name"],
        "run_id": report["run_id"],
        "sample": report.get("sample"),
        "task": report["task"],
        "generated_by": report["generated_by"],
        "decision": report.get("decision"),
        "best": best,
        "primary": primary,
        "data": {
            "fingerprint": data.get("fingerprint") or "",
            "source": data.get("source"),
            "rows": data.get("rows"),
        },
        "fingerprint_short": str(data.get("fingerprint") or "")[:12],
        "column_count": len(columns) if isinstance(columns, list) else columns,
        "gates": gates,
        "gates_passed": all(gate["passed"] for gate in gates),
        "leaderboard": leaderboard,
        "metric_names": _metric_names(leaderboard or ([baseline] if baseline else []), primary),
        "metrics": metrics,
        "baseline": baseline,
        "headline": _headline(report["task"], primary, metrics, baseline),
        "plots": [
            (title, base64.b64encode(png).decode("ascii")) for title, png in plots_for(diagnostics)
        ],
        "test_rows": diagnostics.get("rows"),
        "per_class": _per_class(diagnostics.get("per_class") or {}, positive),
        "residuals": diagnostics.get("residuals"),
        "importance_scoring": diagnostics.get("importance_scoring") or "score",
        "importance": _importance(diagnostics.get("permutation_importance") or []),
    }


def _metric_names(leaderboard: list[dict[str, Any]], primary: str | None) -> list[str]:
    names: list[str] = [primary] if primary else []
    for row in leaderboard:
        names += [name for name in row.get("metrics") or {} if name not in names]
    return names


def _baseline(value: Any) -> dict[str, Any] | None:
    """The baseline row: its label (``baseline (mean)``) and metrics; ``None`` without one."""
    if not isinstance(value, dict):
        return None
    strategy = value.get("strategy")
    shown = _BASELINE_STRATEGIES.get(strategy, strategy) if isinstance(strategy, str) else None
    return {
        "label": f"baseline ({shown})" if shown else "baseline",
        "strategy": strategy,
        "metrics": value.get("metrics") or {},
    }


def _headline(
    task: str, primary: str | None, metrics: Mapping[str, Any], baseline: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The winner's primary metric (plus MAE, RMSE and R2 for regression), each beside the
    baseline's value and whether the model beats it (``None``: no baseline value)."""
    from conveyor.evaluation.metrics import higher_is_better

    names = [primary] if primary else []
    if task == "regression":
        names += [name for name in _REGRESSION_HEADLINE if name not in names]
    rows = []
    for name in names:
        value = metrics.get(name)
        if not _is_number(value):
            continue
        base = (baseline or {}).get("metrics", {}).get(name)
        beats = None
        if _is_number(base):
            beats = value > base if higher_is_better(name) else value < base
        rows.append({"name": name, "value": value, "baseline": base, "beats": beats})
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _per_class(report: Mapping[str, Any], positive: Any) -> list[dict[str, Any]]:
    """Rows of scikit-learn's ``classification_report``; averages last, accuracy skipped."""
    rows = [
        {
            "label": label,
            "precision": scores.get("precision"),
            "recall": scores.get("recall"),
            "f1": scores.get("f1-score"),
            "support": _whole(scores.get("support")),
            "summary": label.endswith(" avg"),
            "positive": positive is not None and label == str(positive),
        }
        for label, scores in report.items()
        if isinstance(scores, dict)
    ]
    return sorted(rows, key=lambda row: row["summary"])  # stable: classes keep their order


def _importance(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Importance rows with the bar width, in percent of the largest importance."""
    peak = max((row["mean"] or 0.0 for row in rows), default=0.0)
    return [
        {**row, "width": round(100 * max(row["mean"] or 0.0, 0.0) / peak, 1) if peak > 0 else 0}
        for row in rows
    ]


def _whole(value: Any) -> Any:
    """``389.0`` as ``389``: a count that scikit-learn may hand over as a float."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _num(value: Any) -> str:
    """A metric for people: 4 decimals, thousands separated for big numbers, ``—`` if absent."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "\u2014"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4f}"
