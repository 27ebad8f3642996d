"""``/health`` (the process is up) and ``/ready`` (a verified model is loaded). No auth."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from conveyor.serving.deps import State
from conveyor.serving.schemas import Health, Ready, TaskHealth

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness")
def health() -> Health:
    """The server process is up."""
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Ready,
    summary="Readiness",
    responses={503: {"model": Ready, "description": "A background task is failing."}},
)
def ready(state: State) -> JSONResponse:
    """A model version is loaded and its artifact hash was verified at load, and the background
    tasks (API-key refresh, alias following) are running: 503 when one has not succeeded for
    ten polls, since a server that cannot refresh its keys would keep accepting revoked ones.
    ``swap_error`` says why the alias's current version is not the one served, if it is not."""
    current = state.watcher.current
    tasks = [task.status() for task in state.tasks]
    stale = [t for t in tasks if t.stale]
    body = Ready(
        status="failing" if stale else "ready",
        model=current.record.name,
        version=current.record.version,
        swap_error=state.watcher.last_error,
        tasks={
            t.name: TaskHealth(ok=t.ok, stale=t.stale, failures=t.failures, error=t.last_error)
            for t in tasks
        },
    )
    return JSONResponse(body.model_dump(), status_code=503 if stale else 200)
