"""The app factory: a FastAPI server for one registered model (``NAME@ALIAS`` or ``NAME:VER``).

Run it with ``conveyor serve``; build it in code with :func:`create_app`. With several uvicorn
workers each process builds its own app from :func:`app_from_env`.
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import Field

from conveyor._lifeline import exit_with_parent
from conveyor._version import __version__
from conveyor.config import ServingConfig, validate_section, with_overrides
from conveyor.serving import errors
from conveyor.serving.auth import KeyRing
from conveyor.serving.batcher import MicroBatcher
from conveyor.serving.deps import ServingState, authenticate
from conveyor.serving.metrics import ServerMetrics
from conveyor.serving.model import ModelWatcher, load_version
from conveyor.serving.predlog import PredictionLog
from conveyor.serving.routes import docs as docs_page
from conveyor.serving.routes import health, models, predict
from conveyor.serving.supervisor import Supervised

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from conveyor.project import Project
    from conveyor.serving.model import LoadedModel

log = logging.getLogger("conveyor.serving")

SETTINGS_ENV = "CONVEYOR_SERVE_SETTINGS"
PUBLIC_ROUTES = ("/health", "/ready")


class ServeSettings(ServingConfig):
    """How the server runs: conveyor.yaml ``serving:`` (whose defaults and bounds are the only
    ones; ``conveyor serve`` flags override the same fields) plus what only a running server
    has: the project folder, the model it serves and the pace of its background work."""

    project: str
    model: str  # NAME@ALIAS (followed) or NAME:VER (pinned)
    max_batch_rows: int = Field(1024, ge=1)  # rows the micro-batcher predicts at once
    poll_seconds: float = Field(1.0, gt=0)  # alias and key refresh
    log_flush_seconds: float = Field(2.0, gt=0)
    log_flush_rows: int = Field(5000, ge=1)

    @classmethod
    def from_config(
        cls, config: ServingConfig, *, project: str, model: str, **runtime: Any
    ) -> ServeSettings:
        """``config`` (``serving:`` of conveyor.yaml) for ``model`` of ``project``.

        Args:
            config: the serving section.
            project: the project folder.
            model: ``NAME@ALIAS`` or ``NAME:VER``.
            runtime: other fields (``poll_seconds``, ...), validated like the rest.

        Raises:
            ConfigError: a runtime value is out of bounds.
        """
        base = config.model_dump() | {"project": project, "model": model}
        return validate_section(cls, base | runtime, source="serving settings")

    def override(self, *, source: str = "conveyor serve", **changes: Any) -> ServeSettings:
        """A copy with ``changes`` (e.g. command-line flags), validated like conveyor.yaml.

        Raises:
            ConfigError: a value out of bounds; the message names ``source`` and the field.
        """
        return with_overrides(self, changes, source=source)

    @property
    def auth_required(self) -> bool:
        """Whether /v1 requests need an API key."""
        return self.auth != "none"

    @property
    def max_body_bytes(self) -> int:
        """``max_body_mb`` in bytes."""
        return int(self.max_body_mb * (1 << 20))

    @property
    def max_file_bytes(self) -> int:
        """``max_file_mb`` in bytes."""
        return int(self.max_file_mb * (1 << 20))

    def to_env(self) -> str:
        """JSON for :data:`SETTINGS_ENV` (how worker processes get the settings)."""
        return self.model_dump_json()


def create_app(settings: ServeSettings, project: Project | None = None) -> FastAPI:
    """Build the server: load and verify the model now (errors surface before serving).

    Raises:
        ModelNotFoundError, ArtifactCorruptedError, ConfigError: the model cannot be served.
    """
    from conveyor.project import Project

    proj = project or Project.load(settings.project)
    metadata, artifacts = proj.metadata, proj.artifacts

    def load(ref: str) -> LoadedModel:
        return load_version(
            metadata,
            artifacts,
            ref,
            unknown=settings.unknown_categories,
            max_records=settings.max_records,
        )

    routes = {
        "/health",
        "/ready",
        "/v1/model",
        "/v1/predict",
        "/v1/predict/file",
        "/metrics",
        "/openapi.json",
        "/docs",
    }
    metrics = ServerMetrics(routes)
    keys = KeyRing(metadata.list_api_keys) if settings.auth_required else None

    def on_swap(old: LoadedModel, new: LoadedModel) -> None:
        metrics.swaps.inc()
        metrics.model_version.labels(new.record.name).set(new.record.version)

    def on_refuse(name: str, version: int, why: str) -> None:
        metrics.refused.inc()
        _alert_refused(proj, name, version, why)

    watcher = ModelWatcher(
        load, metadata.get_alias, settings.model, on_swap=on_swap, on_refuse=on_refuse
    )
    metrics.model_version.labels(watcher.current.record.name).set(watcher.current.record.version)
    tasks = [Supervised("model-watcher", watcher.poll, interval=settings.poll_seconds)]
    if keys is not None:  # on its own thread: a failing swap must never freeze revocations
        tasks.append(Supervised("key-refresh", keys.refresh, interval=settings.poll_seconds))
    for task in tasks:
        metrics.watch_task(task)
    state = ServingState(settings, watcher, metrics, keys, tasks=tasks)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.log_predictions:
            state.predlog = PredictionLog(
                metadata,
                artifacts,
                flush_rows=settings.log_flush_rows,
                flush_seconds=settings.log_flush_seconds,
                on_written=metrics.log_rows.inc,
                on_error=metrics.log_errors.inc,
            )
        state.batcher = MicroBatcher(
            lambda: watcher.current,
            max_rows=settings.max_batch_rows,
            on_batch=lambda batch: predict.record_batch(state, batch),
        )
        state.batcher.start()
        for task in tasks:
            task.start()
        log.info("serving %s (%s)", watcher.current.ref, settings.model)
        try:
            yield
        finally:
            for task in tasks:
                task.stop()
            await state.batcher.stop()
            if state.predlog is not None:
                state.predlog.close()
            if project is None:
                proj.close()

    app = FastAPI(
        title=f"conveyor: {watcher.current.record.name}",
        version=__version__,
        description=_description(settings),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # a redirect to the trailing-slash form would be built from the client's Host header
        redirect_slashes=False,
    )
    app.state.conveyor = state
    errors.install(app)
    secured = [] if keys is None else [Depends(authenticate)]
    docs = [] if settings.public_docs else secured
    app.include_router(health.router)
    app.include_router(models.router, dependencies=secured)
    app.include_router(predict.router, dependencies=secured)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi(app, state)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs)
    def openapi_json() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=docs)
    def swagger() -> HTMLResponse:
        return docs_page.page(title=app.title, openapi_url="/openapi.json")

    @app.get(f"{docs_page.ASSETS_PATH}/{{name}}", include_in_schema=False, dependencies=docs)
    def swagger_asset(name: str) -> FileResponse:
        return docs_page.asset(name)

    app.add_middleware(_Metered, metrics=metrics)
    return app


class _Metered:
    """ASGI middleware counting every request (see :meth:`ServerMetrics.middleware`)."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self._wrapped = metrics.middleware(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._wrapped(scope, receive, send)


def app_from_env() -> FastAPI:
    """The app for a uvicorn worker process: settings from ``$CONVEYOR_SERVE_SETTINGS``."""
    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise RuntimeError(f"${SETTINGS_ENV} is not set; start the server with `conveyor serve`")
    # A SIGKILLed `conveyor serve --workers N` must not leave its workers serving on alone:
    # they stop like on SIGTERM (requests finished, prediction log flushed), at most 3 s later.
    exit_with_parent(grace=3.0)
    return create_app(ServeSettings.model_validate_json(raw))


def _alert_refused(project: Project, name: str, version: int, why: str) -> None:
    """Tell the people on the project's alert channels that a version was not served."""
    from conveyor.monitoring.alerts import Alert, channels_from_config, dispatch

    config = project.config.monitoring
    alert = Alert(
        key=f"serving-refused:{name}:{version}",
        kind="serving",
        title=f"{name} version {version} was not served",
        message=why,
        model=name,
        details={"version": version},
    )
    dispatch(
        alert,
        channels_from_config(config.alerts),
        project.metadata,
        cooldown_seconds=config.alert_cooldown_minutes * 60,
    )


def _openapi(app: FastAPI, state: ServingState) -> dict[str, Any]:
    """FastAPI's schema plus the request schemas generated from the model's signature."""
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    contract = state.watcher.current.contract
    request_schema = contract.request_model.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    components.update(request_schema.pop("$defs", {}))
    components["PredictRequest"] = request_schema
    return spec


def _description(settings: ServeSettings) -> str:
    auth = (
        "Send an API key as `Authorization: Bearer KEY` or `X-API-Key: KEY` "
        "(create one with `conveyor keys create --name NAME`). /health and /ready are open."
        if settings.auth_required
        else "**Authentication is off** (--no-auth or serving.auth: none)."
    )
    return (
        f"Serves `{settings.model}` from the conveyor project {Path(settings.project).name}. {auth}"
    )
