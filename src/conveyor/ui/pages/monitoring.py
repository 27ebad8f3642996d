"""Monitoring: per model, the drift checks over time (a column x time grid), each check's
report, the alerts sent or suppressed, the retrains with their causes and decisions, and the
predictions served by version.

Everything comes from the audit log (``monitor.check``, ``alert.*``, ``retrain.*``,
``watch.cycle`` events, which :mod:`conveyor.monitoring` and :mod:`conveyor.watch` write), the
check reports those events point at (JSON artifacts), and the prediction log's partitions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from conveyor.errors import ArtifactError, MetadataError
from conveyor.ui.app import render, state_of
from conveyor.ui.auth import ReadSession  # noqa: TC001 - FastAPI reads it at runtime
from conveyor.ui.pages.lineage import served_volume

if TYPE_CHECKING:
    from conveyor.store.metadata import EventRecord
    from conveyor.ui.app import UiState

router = APIRouter()
CHECKS_SHOWN = 30  # columns of the drift grid per page
EVENTS_SHOWN = 50  # alerts, retrains
DIGEST = re.compile(r"[0-9a-f]{64}")
DATASET_ROW, PREDICTION_ROW = "(dataset)", "(predictions)"
ALERTS = ("alert.sent", "alert.suppressed")
RETRAINS = ("retrain.start", "retrain.done", "retrain.skipped")


@dataclass
class CheckView:
    """One drift check as the grid shows it: when, which version, a verdict per row."""

    event: EventRecord
    verdicts: dict[str, str] = field(default_factory=dict)  # row -> drift | ok | not enough data
    details: dict[str, str] = field(default_factory=dict)  # row -> statistic in words
    complete: bool = True  # False: the report could not be read; only drifted columns known

    @property
    def report(self) -> str | None:
        digest = self.event.details.get("report")
        return digest if isinstance(digest, str) and DIGEST.fullmatch(digest) else None

    @property
    def html(self) -> str | None:
        digest = self.event.details.get("html")
        return digest if isinstance(digest, str) and DIGEST.fullmatch(digest) else None


@router.get("/monitoring")
def monitoring(request: Request, session: ReadSession, model: str = "", page: int = 1) -> Response:
    """``?model=NAME``: that model's monitoring; without it, the models to choose from."""
    metadata = state_of(request).metadata
    names = sorted({v.name for v in metadata.list_model_versions()})
    if not model.strip():
        if len(names) == 1:
            return RedirectResponse(f"/monitoring?model={names[0]}", status_code=307)
        latest = {
            n: _last(metadata.list_events(entity=n, action="monitor.check", last=1)) for n in names
        }
        return render(request, "monitoring.html", mode="index", names=names, latest=latest)
    name = model.strip().partition("@")[0].partition(":")[0]
    if name not in names:
        raise HTTPException(
            404, f"no model named {name!r}: the monitoring page lists those there are"
        )
    return _model(request, name, max(page, 1))


@router.get("/monitoring/check")
def check_report(request: Request, session: ReadSession, report: str, html: str = "") -> Response:
    """One check's report (the JSON artifact a ``monitor.check`` event points at), drawn here."""
    state = state_of(request)
    data = _load_report(state, report)
    if data is None:
        raise HTTPException(404, f"no drift report {report[:64]!r} in the artifact store")
    drift = data.get("drift") or {}
    return render(
        request,
        "monitoring_check.html",
        report=data,
        drift=drift,
        rows=[*drift.get("columns", []), *drift.get("outputs", [])],
        n_columns=len(drift.get("columns", [])),
        html=html if DIGEST.fullmatch(html) else None,
        name=str(data.get("model", "")).partition(":")[0],
    )


@router.get("/monitoring/check.html")
def check_html(request: Request, session: ReadSession, digest: str) -> Response:
    """The check's original, self-contained HTML report, as a download: it carries its own
    inline styles, which this site's Content-Security-Policy would not apply."""
    if not DIGEST.fullmatch(digest):
        raise HTTPException(400, "'digest': expected 64 hex digits")
    state = state_of(request)
    try:
        state.metadata.artifact_kind(digest)  # recorded by this project: not any stored bytes
        body = state.artifacts.get_bytes(digest)
    except (LookupError, ArtifactError, MetadataError) as exc:
        raise HTTPException(404, f"report {digest[:12]}: {exc}") from None
    return Response(
        body,
        media_type="text/html; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="drift-report-{digest[:12]}.html"'},
    )


def _model(request: Request, name: str, page: int) -> Response:
    state = state_of(request)
    metadata = state.metadata
    found = metadata.list_events(entity=name, action="monitor.check", last=CHECKS_SHOWN * page + 1)
    newest_first = found[::-1]
    shown = newest_first[CHECKS_SHOWN * (page - 1) : CHECKS_SHOWN * page][::-1]
    checks = [_view(state, e) for e in shown]
    alerts = _newest(metadata, name, ALERTS)
    retrains = _newest(metadata, name, RETRAINS)
    cycles = metadata.list_events(entity=name, action="watch.cycle", last=1)
    aliases = sorted((a, v) for (_, a), v in metadata.aliases(name).items())
    return render(
        request,
        "monitoring.html",
        mode="model",
        name=name,
        checks=checks,
        rows=_rows(checks),
        page=page,
        more=len(found) > CHECKS_SHOWN * page,
        alerts=alerts,
        retrains=retrains,
        last_cycle=_last(cycles),
        aliases=aliases,
        volume=served_volume(metadata, name),
    )


def _newest(metadata: Any, name: str, actions: tuple[str, ...]) -> list[EventRecord]:
    """The newest events of these kinds for ``name``, newest first."""
    events = [
        e for a in actions for e in metadata.list_events(entity=name, action=a, last=EVENTS_SHOWN)
    ]
    return sorted(events, key=lambda e: e.id, reverse=True)[:EVENTS_SHOWN]


def _last(events: list[EventRecord]) -> EventRecord | None:
    return events[-1] if events else None


def _view(state: UiState, event: EventRecord) -> CheckView:
    """A check's verdicts from its report, or (report gone) from the event's drifted columns."""
    view = CheckView(event)
    details = event.details
    data = _load_report(state, view.report) if view.report else None
    dataset = details.get("dataset_drift")
    view.verdicts[DATASET_ROW] = (
        "not enough data" if dataset is None else ("drift" if dataset else "ok")
    )
    view.verdicts[PREDICTION_ROW] = "drift" if details.get("prediction_drift") else "ok"
    if data is None:
        view.complete = False
        for column in details.get("drifted_columns") or []:
            view.verdicts[str(column)] = "drift"
        return view
    drift = data.get("drift") or {}
    outputs = drift.get("outputs") or []
    if not outputs:
        view.verdicts[PREDICTION_ROW] = "not enough data"
    rows = [(str(c.get("column")), c) for c in drift.get("columns", [])]
    rows += [(f"output: {c.get('column')}", c) for c in outputs]
    for row, column in rows:
        view.verdicts[row] = str(column.get("verdict"))
        view.details[row] = _describe(column)
    return view


def _describe(column: dict[str, Any]) -> str:
    """``wasserstein 0.31 vs 0.1``: the statistic behind a verdict, for a cell's tooltip."""
    if column.get("verdict") == "not enough data":
        return f"not enough data ({column.get('n_current', 0)} rows)"
    p = column.get("adjusted_p_value")
    stat = column.get("statistic")
    if p is not None:
        return f"{column.get('method')} adjusted p={p:.3g} vs {column.get('threshold')}"
    if stat is not None:
        return f"{column.get('method')} {stat:.3g} vs {column.get('threshold')}"
    return str(column.get("method", ""))


def _rows(checks: list[CheckView]) -> list[str]:
    """The grid's rows: the dataset verdict, the predictions, then every column in the order
    the checks first reported it (model outputs last)."""
    seen: dict[str, None] = {}
    for check in checks:
        for row in check.verdicts:
            if row not in (DATASET_ROW, PREDICTION_ROW):
                seen.setdefault(row, None)
    columns = [r for r in seen if not r.startswith("output: ")]
    outputs = [r for r in seen if r.startswith("output: ")]
    return [DATASET_ROW, PREDICTION_ROW, *columns, *outputs]


def _load_report(state: UiState, digest: str | None) -> dict[str, Any] | None:
    """A check's JSON report, or None when it is not (or no longer) in the stores."""
    if digest is None or not DIGEST.fullmatch(digest):
        return None
    try:
        data = state.artifacts.get(digest, state.metadata.artifact_kind(digest))
    except (LookupError, ArtifactError, MetadataError):
        return None
    return data if isinstance(data, dict) and "drift" in data else None
