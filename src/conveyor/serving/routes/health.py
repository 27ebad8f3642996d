"""``/health`` (the process is up) and ``/ready`` (a verified model is loaded). No auth."""

from __future__ import annotations

from fastapi import APIRouter

from conveyor.serving.deps import State
from conveyor.serving.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="Liveness")
def health() -> Health:
    """The server process is up."""
    return Health(status="ok")


@router.get("/ready", response_model=Ready, summary="Readiness")
def ready(state: State) -> Ready:
    """A model version is loaded and its artifact hash was verified at load."""
    current = state.watcher.current
    return Ready(status="ready", model=current.record.name, version=current.record.version)
