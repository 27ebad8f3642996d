"""Runs: the list, one run (DAG, params, metrics, trials, validation, artifacts, report), compare.

Routes only read the store and hand shaped data (``_runs_view``) to the templates.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from conveyor.errors import ArtifactError, NotFoundError
from conveyor.evaluation.metrics import higher_is_better
from conveyor.ui.app import render, state_of
from conveyor.ui.auth import ReadSession  # noqa: TC001 - FastAPI reads it at runtime
from conveyor.ui.pages import _runs_view as view
from conveyor.ui.svg import bar_chart, dag_svg, trial_chart

if TYPE_CHECKING:
    from markupsafe import Markup

    from conveyor.store.metadata import SqlMetadataStore
    from conveyor.store.metadata.records import ArtifactRef, RunRecord
    from conveyor.ui.app import UiState

router = APIRouter()
PAGE_SIZE = 25
MAX_COMPARE = 8
STATUSES = ("running", "succeeded", "failed", "gated", "interrupted")
PIPELINES = ("train", "predict", "monitor")
REPORT_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'none'"
)
"""The embedded HTML report's own policy: its inline styles, its data: images, nothing else."""
DIGEST = re.compile(r"[0-9a-f]{64}")


@router.get("/")
def home() -> Response:
    return RedirectResponse("/runs", status_code=307)


# -- the list -------------------------------------------------------------------------------


@router.get("/runs")
def runs_list(
    request: Request,
    session: ReadSession,
    pipeline: str = "",
    status: str = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    """The newest runs first, a page at a time, with their primary metric and dataset."""
    if status and status not in STATUSES:
        raise HTTPException(400, f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    metadata = state_of(request).metadata
    found, more = _page_of_runs(metadata, pipeline or None, status or None, page)
    by_digest = {d.digest: d.fingerprint for d in metadata.list_datasets() if d.digest}
    rows = [view.run_row(metadata.get_run(r.id), by_digest) for r in found]
    return render(
        request,
        "runs.html",
        rows=rows,
        pipeline=pipeline,
        status=status,
        page=page,
        more=more,
        statuses=STATUSES,
        pipelines=sorted(
            {*PIPELINES, *(r.run.pipeline for r in rows), *([pipeline] * bool(pipeline))}
        ),
    )


def _page_of_runs(
    metadata: SqlMetadataStore, pipeline: str | None, status: str | None, page: int
) -> tuple[list[RunRecord], bool]:
    """Runs of page ``page`` (filtered and paged in the database) and whether older ones exist."""
    runs = metadata.list_runs(
        limit=PAGE_SIZE + 1, pipeline=pipeline, status=status, offset=PAGE_SIZE * (page - 1)
    )
    return runs[:PAGE_SIZE], len(runs) > PAGE_SIZE


# -- one run --------------------------------------------------------------------------------


def _run_or_404(metadata: SqlMetadataStore, run_id: str) -> RunRecord:
    try:
        return metadata.get_run(run_id)
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/runs/{run_id}")
def run_page(request: Request, session: ReadSession, run_id: str) -> Response:
    """Everything about one run; its top part follows the run while it is in progress."""
    state = state_of(request)
    run = _run_or_404(state.metadata, run_id)
    if run.id != run_id:
        return RedirectResponse(f"/runs/{run.id}", status_code=307)
    outputs = _outputs(run)
    live = _live_context(state, run)
    unavailable: list[str] = live["unavailable"]
    metric = _tuning_metric(run)
    trials = view.trials_by_candidate(state.metadata.list_trials(run.id), metric)
    matrices, singles = view.metric_tables(run.metrics)
    return render(
        request,
        "run.html",
        **live,
        live=run.status == "running",
        params=[(k, view.fmt_value(v)) for k, v in sorted(run.params.items())],
        matrices=matrices,
        singles=singles,
        trials=trials,
        charts={c.candidate: _trial_chart(c, metric) for c in trials},
        trial_metric=metric,
        validation=_load_json(state, outputs.get("validation_report"), unavailable),
        registration=_load_json(state, outputs.get("registration"), unavailable),
        gates=_load_json(state, outputs.get("gates"), unavailable),
        artifacts=[(s, ref) for s in run.steps for ref in s.outputs],
        report=outputs.get("report_html"),
        fmt_value=view.fmt_value,
    )


@router.get("/runs/{run_id}/live")
def run_live(request: Request, session: ReadSession, run_id: str) -> Response:
    """The run page's top (status, facts, DAG, steps) alone: ``ui.js`` swaps it in every second
    or two while the run is running. ``X-Run-Status`` tells the script when the run ended."""
    state = state_of(request)
    run = _run_or_404(state.metadata, run_id)
    response = render(request, "run_live.html", **_live_context(state, run))
    response.headers["X-Run-Status"] = str(run.status)
    return response


@router.get("/runs/{run_id}/dag")
def run_dag(request: Request, session: ReadSession, run_id: str) -> Response:
    """Just the DAG as an SVG document (to embed or save)."""
    metadata = state_of(request).metadata
    run = _run_or_404(metadata, run_id)
    svg = str(_dag(metadata, run)["svg"])
    return Response(svg, media_type="image/svg+xml", headers={"X-Run-Status": str(run.status)})


def _outputs(run: RunRecord) -> dict[str, ArtifactRef]:
    return {ref.name: ref for step in run.steps for ref in step.outputs}


def _live_context(state: UiState, run: RunRecord) -> dict[str, Any]:
    """What the live part of the run page shows (the page and the fragment share it)."""
    unavailable: list[str] = []
    return {
        "run": run,
        "duration": view.run_duration(run),
        "dag": _dag(state.metadata, run),
        "dataset": _load_json(state, _outputs(run).get("dataset"), unavailable),
        "primary": view.primary_score(run)[0],
        "failed": [s for s in run.steps if s.status == "failed"],
        "unavailable": unavailable,
        "status_words": view.STATUS_WORDS,
        "fmt_number": view.fmt_number,
    }


def _trial_chart(trials: view.CandidateTrials, metric: str) -> Markup:
    return trial_chart(trials.points, metric=metric, higher_better=higher_is_better(metric))


def _tuning_metric(run: RunRecord) -> str:
    metric = run.params.get("training.tuning.metric") or run.params.get("evaluation.primary")
    return str(metric) if metric else "score"


def _load_json(
    request_state: UiState, ref: ArtifactRef | None, unavailable: list[str]
) -> dict[str, Any] | None:
    """A small JSON artifact (report, contract) as data; never unpickles anything. One that is
    gone from the artifact store is named in ``unavailable`` instead."""
    if ref is None or not (ref.kind == "json" or ref.kind.startswith("contract:")):
        return None
    try:
        loaded = json.loads(request_state.artifacts.get_bytes(ref.digest))
    except (ArtifactError, ValueError):
        unavailable.append(f"{ref.name} ({ref.digest[:12]})")
        return None
    return loaded if isinstance(loaded, dict) else None


def _dag(metadata: SqlMetadataStore, run: RunRecord) -> dict[str, Any]:
    """The DAG's SVG and progress; the dataflow comes from the steps' recorded datasets, their
    cache keys (started steps) or, for steps not run yet, the last finished run of the pipeline."""
    known = view.recorded_io(run.steps)
    if view.missing_io(run, known):
        known = {**view.key_parts_io(metadata.step_key_parts(run.id)), **known}
    if view.missing_io(run, known):
        known = {**_previous_io(metadata, run), **known}
    done = sum(1 for s in run.steps if s.status.done_ok or s.status in ("failed", "skipped"))
    return {
        "svg": dag_svg(view.dag_nodes(run), view.dag_edges(run, known)),
        "done": done,
        "total": len(run.steps),
        "status": str(run.status),
    }


def _previous_io(metadata: SqlMetadataStore, run: RunRecord) -> dict[str, view.StepIO]:
    for other in metadata.list_runs(limit=10, pipeline=run.pipeline):
        if other.id != run.id and other.status in ("succeeded", "gated"):
            return view.recorded_io(metadata.get_run(other.id).steps)
    return {}


@router.get("/runs/{run_id}/report")
def run_report(request: Request, session: ReadSession, run_id: str) -> Response:
    """The run's HTML report (embedded in the run page), under a policy that allows its inline
    styles and data: images but no script and nothing from elsewhere."""
    state = state_of(request)
    run = _run_or_404(state.metadata, run_id)
    ref = next((r for s in run.steps for r in s.outputs if r.name == "report_html"), None)
    if ref is None:
        raise HTTPException(404, f"run {run.id[:8]} has no HTML report (no report step ran)")
    try:
        body = state.artifacts.get_bytes(ref.digest)
    except ArtifactError as exc:
        raise HTTPException(404, f"report of run {run.id[:8]}: {exc}") from exc
    headers = {"Content-Security-Policy": REPORT_CSP}
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


# -- artifacts ------------------------------------------------------------------------------

EXTENSIONS = {"parquet": ".parquet", "json": ".json", "joblib": ".joblib", "png": ".png"}
MEDIA = {
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
    "png": "image/png",
}


def download_name(name: str, kind: str, digest: str) -> str:
    """``train.parquet``, ``evaluation.json``, ``report_html.html``: a file name for a download."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or digest[:12]
    if kind.startswith("contract:"):
        return stem + ".json"
    if kind == "bytes":
        return stem + (".html" if stem.endswith("html") else ".bin")
    return stem + EXTENSIONS.get(kind, ".bin")


@router.get("/artifacts/{digest}")
def artifact(request: Request, session: ReadSession, digest: str, name: str = "") -> Response:
    """An artifact's bytes as a download (``name`` gives the file its dataset name)."""
    if not DIGEST.fullmatch(digest):
        raise HTTPException(404, f"{digest[:80]!r} is not an artifact address (64 hex digits)")
    state = state_of(request)
    try:
        kind = state.metadata.artifact_kind(digest)
        body = state.artifacts.get_bytes(digest)
    except (NotFoundError, ArtifactError) as exc:
        raise HTTPException(404, str(exc)) from exc
    filename = download_name(name or digest[:12], kind, digest)
    media = "application/json" if kind.startswith("contract:") else MEDIA.get(kind)
    return Response(
        body,
        media_type=media or "application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# -- compare --------------------------------------------------------------------------------


@router.get("/compare")
def compare(
    request: Request,
    session: ReadSession,
    run: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """Two or more runs side by side: the params that differ, every metric, a chart."""
    ids = list(dict.fromkeys(r.strip() for r in run or [] if r.strip()))
    if len(ids) > MAX_COMPARE:
        raise HTTPException(400, f"compare at most {MAX_COMPARE} runs at once, not {len(ids)}")
    metadata = state_of(request).metadata
    runs = [_run_or_404(metadata, r) for r in ids]
    if len(runs) < 2:
        return render(request, "compare.html", runs=runs, enough=False)
    labels = [r.id[:8] for r in runs]
    shown = view.chart_metrics(runs)
    values = {
        (m, label): r.metrics.get(m) for m in shown for r, label in zip(runs, labels, strict=True)
    }
    params = view.compare_params(runs)
    metrics = view.compare_metrics(runs)
    return render(
        request,
        "compare.html",
        runs=runs,
        enough=True,
        durations=[view.run_duration(r) for r in runs],
        scores=[view.primary_score(r) for r in runs],
        differing=[p for p in params if p.differs],
        same=[p for p in params if not p.differs],
        metrics=[m for m in metrics if m.differs or m.key.startswith("test.")],
        same_metrics=[m for m in metrics if not (m.differs or m.key.startswith("test."))],
        chart=bar_chart(shown, labels, values),
        chart_metrics=shown,
    )
