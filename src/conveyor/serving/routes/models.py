"""``/v1/model`` (what is served, with lineage) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from conveyor.serving.deps import State
from conveyor.serving.routes._responses import AUTH_ERRORS
from conveyor.serving.schemas import ModelInfo

router = APIRouter(responses=AUTH_ERRORS)


@router.get("/v1/model", response_model=ModelInfo, tags=["model"], summary="The served model")
def model_info(state: State) -> ModelInfo:
    """Name, version, signature, metrics, data version and lineage keys of the served model."""
    current = state.watcher.current
    record = current.record
    return ModelInfo(
        name=record.name,
        version=record.version,
        serving=state.settings.model,
        status=record.status,
        digest=record.digest,
        signature=record.signature or {},
        metrics=record.metrics,
        dataset=record.dataset,
        run_id=record.run_id,
        git_commit=record.git_commit,
        registered_at=record.created_at,
        loaded_since=current.loaded_at,
        swap_error=state.watcher.last_error,
    )


@router.get(
    "/metrics",
    tags=["monitoring"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics(state: State) -> Response:
    """Request counts, latencies by stage, predictions by class, the model version."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
