"""Lineage: dataset version -> run -> candidates -> model version -> aliases -> serving, from a
model version back to its data or from a dataset version forward to everything trained on it
(the queries ``conveyor lineage`` runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, Request

from conveyor.errors import ArtifactError
from conveyor.ui.app import render, state_of
from conveyor.ui.auth import ReadSession  # noqa: TC001 - FastAPI reads it at runtime

if TYPE_CHECKING:
    from starlette.responses import Response

    from conveyor.registry.lineage import DatasetLineage
    from conveyor.store.metadata import PredictionLogRecord, ServingStore

router = APIRouter()
INDEX_VERSIONS = 30  # model versions listed on the lineage index


@dataclass(frozen=True)
class Volume:
    """Predictions a server logged for one model version."""

    version: int
    rows: int
    batches: int
    first_at: float
    last_at: float


def served_volume(metadata: ServingStore, name: str) -> list[Volume]:
    """Logged predictions of ``name`` by version (from the prediction log's partitions), by
    version number. Empty when nothing was served with ``serving.log_predictions`` on."""
    by_version: dict[int, list[PredictionLogRecord]] = {}
    for record in metadata.list_prediction_logs(name):
        by_version.setdefault(record.model_version, []).append(record)
    return [
        Volume(
            version,
            sum(r.n_rows for r in logs),
            len(logs),
            min(r.first_at for r in logs),
            max(r.last_at for r in logs),
        )
        for version, logs in sorted(by_version.items())
    ]


@router.get("/lineage")
def lineage(request: Request, session: ReadSession, model: str = "", dataset: str = "") -> Response:
    """``?model=NAME:VER`` (or ``NAME@ALIAS``), ``?dataset=FINGERPRINT`` (or a prefix), or
    neither: the dataset versions and recent model versions to start from."""
    if model.strip() and dataset.strip():
        raise HTTPException(
            400, "give a model (?model=NAME:VER) or a dataset (?dataset=FP), not both"
        )
    if model.strip():
        return _model(request, model.strip())
    if dataset.strip():
        return _dataset(request, dataset.strip())
    metadata = state_of(request).metadata
    return render(
        request,
        "lineage.html",
        mode="index",
        datasets=sorted(metadata.list_datasets(), key=lambda d: d.created_at, reverse=True),
        versions=sorted(metadata.list_model_versions(), key=lambda v: v.created_at, reverse=True)[
            :INDEX_VERSIONS
        ],
    )


def _model(request: Request, ref: str) -> Response:
    from conveyor.registry.lineage import model_lineage

    state = state_of(request)
    try:
        found = model_lineage(state.metadata, state.artifacts, ref)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except ArtifactError as exc:
        raise HTTPException(500, f"{ref}: its evaluation reports cannot be read: {exc}") from None
    name = found.model.name
    return render(
        request,
        "lineage.html",
        mode="model",
        found=found,
        volume=served_volume(state.metadata, name),
        all_aliases=sorted((a, v) for (_, a), v in state.metadata.aliases(name).items()),
    )


def _dataset(request: Request, fingerprint: str) -> Response:
    from conveyor.registry.lineage import dataset_lineage

    metadata = state_of(request).metadata
    try:
        found = dataset_lineage(metadata, fingerprint)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    trained: dict[str, list[int]] = {}
    for m in found.models:
        name, _, version = m.model.partition(":")
        trained.setdefault(name, []).append(int(version))
    return render(
        request,
        "lineage.html",
        mode="dataset",
        found=found,
        runs=_runs_of(found),
        trained=trained,
        volumes={n: served_volume(metadata, n) for n in sorted(trained)},
    )


def _runs_of(found: DatasetLineage) -> list[str]:
    """The runs that recorded the dataset or trained a model on it, first seen first."""
    runs = [found.dataset.run_id] if found.dataset.run_id else []
    for m in reversed(found.models):  # the store lists versions newest first
        if m.run_id and m.run_id not in runs:
            runs.append(m.run_id)
    return runs
