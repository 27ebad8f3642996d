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
from conveyor.errors import ConfigError
from conveyor.serving import errors
from conveyor.serving.auth import ENV_KEYS, KeyRing, StaticKeys
from conveyor.serving.batcher import MicroBatcher
from conveyor.serving.deps import ServingState, authenticate
from conveyor.serving.metrics import ServerMetrics
from conveyor.serving.model import ModelWatcher, fixed_watcher, load_bundle, load_version
from conveyor.serving.platforms import PlatformName, platform_spec
from conveyor.serving.predlog import FolderPredictionLog, PredictionLog
from conveyor.serving.routes import docs as docs_page
from conveyor.serving.routes import health, models, predict
from conveyor.serving.supervisor import Supervised

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from conveyor.project import Project
    from conveyor.registry.bundle import Bundle
    from conveyor.serving.model import LoadedModel
    from conveyor.serving.platforms import PlatformSpec
    from conveyor.serving.predlog import AbstractPredictionLog

log = logging.getLogger("conveyor.serving")

SETTINGS_ENV = "CONVEYOR_SERVE_SETTINGS"
PUBLIC_ROUTES = ("/health", "/ready")
STANDARD_ROUTES = (
    "/health",
    "/ready",
    "/v1/model",
    "/v1/predict",
    "/v1/predict/file",
    "/metrics",
    "/openapi.json",
    "/docs",
)


class ServeSettings(ServingConfig):
    """How the server runs: conveyor.yaml ``serving:`` (whose defaults and bounds are the only
    ones; ``conveyor serve`` flags override the same fields) plus what only a running server
    has: the project folder, the model it serves and the pace of its background work."""

    project: str = ""  # the project folder (registry mode)
    model: str = ""  # NAME@ALIAS (followed) or NAME:VER (pinned); a bundle's NAME:VER
    bundle: str | None = None  # a bundle folder, .tar.gz or URI: served with no metadata store
    platform: PlatformName | None = None  # sagemaker | vertex | azureml routes (with a bundle)
    log_dir: str | None = None  # bundle mode: prediction log folder or URI (None: no log)
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

    With ``settings.bundle`` set, the server is :func:`create_bundle_app`'s (no project).

    Raises:
        ModelNotFoundError, ArtifactCorruptedError, ConfigError: the model cannot be served.
        BundleError: the bundle is missing or does not match its manifest.
    """
    if settings.bundle is not None:
        return create_bundle_app(settings)
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

    metrics = ServerMetrics(set(STANDARD_ROUTES))
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
    tasks = [Supervised("model-watcher", watcher.poll, interval=settings.poll_seconds)]
    if keys is not None:  # on its own thread: a failing swap must never freeze revocations
        tasks.append(Supervised("key-refresh", keys.refresh, interval=settings.poll_seconds))
    state = ServingState(settings, watcher, metrics, keys, tasks=tasks)

    def open_log() -> AbstractPredictionLog | None:
        if not settings.log_predictions:
            return None
        return PredictionLog(metadata, artifacts, **_log_options(settings, metrics))

    def close() -> None:
        if project is None:
            proj.close()

    return _assemble(state, open_log=open_log, close=close, description=_description(settings))


def create_bundle_app(
    settings: ServeSettings,
    *,
    bundle: Bundle | None = None,
    env: Mapping[str, str] | None = None,
) -> FastAPI:
    """The server of a model bundle, with no metadata store and no project folder.

    Without a platform, ``/v1`` needs one of the keys in ``$CONVEYOR_API_KEYS`` unless auth
    is off; in a platform mode the platform authenticates callers and no key is asked for.
    The prediction log goes to ``settings.log_dir`` (a folder or URI) when set.

    Args:
        settings: with ``bundle`` (and optionally ``platform`` and ``log_dir``) set.
        bundle: the bundle, already opened (default: open ``settings.bundle``).
        env: the environment (platform variables, ``$CONVEYOR_API_KEYS``; default: the
            process's).

    Raises:
        BundleError: the bundle is missing or a file does not match its manifest.
        ConfigError: auth is on and no key is configured, or a key is malformed.
        ValueError: a platform variable (port, route) is malformed.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    platform = None if settings.platform is None else platform_spec(settings.platform, environ)
    loaded = _load_bundle(settings, bundle)
    settings = settings.model_copy(update={"model": loaded.ref})
    keys = None
    if platform is None and settings.auth_required:
        keys = StaticKeys(_required_keys(environ))
    metrics = ServerMetrics(set(STANDARD_ROUTES) | set(platform.routes if platform else ()))
    state = ServingState(settings, fixed_watcher(loaded), metrics, keys)
    log_dir = settings.log_dir

    def open_log() -> AbstractPredictionLog | None:
        if not settings.log_predictions or not log_dir:
            return None
        return FolderPredictionLog(log_dir, **_log_options(settings, metrics))

    return _assemble(
        state,
        open_log=open_log,
        close=lambda: None,
        description=_description(settings),
        platform=platform,
    )


def _load_bundle(settings: ServeSettings, bundle: Bundle | None) -> LoadedModel:
    """Open (into a temporary folder, removed once the model is in memory) and load."""
    import tempfile

    from conveyor.registry.bundle import open_bundle

    def load(opened: Bundle) -> LoadedModel:
        return load_bundle(
            opened, unknown=settings.unknown_categories, max_records=settings.max_records
        )

    if bundle is not None:
        return load(bundle)
    assert settings.bundle is not None
    with tempfile.TemporaryDirectory(prefix="conveyor-bundle-") as work:
        return load(open_bundle(settings.bundle, workdir=Path(work)))


def _required_keys(env: Mapping[str, str]) -> str:
    spec = env.get(ENV_KEYS, "")
    if not spec.strip():
        raise ConfigError(
            f"a bundle server needs API keys: set ${ENV_KEYS} (comma-separated sha256:HEX "
            "digests of tokens, or tokens), or pass --no-auth to serve without keys"
        )
    return spec


def _log_options(settings: ServeSettings, metrics: ServerMetrics) -> dict[str, Any]:
    return {
        "flush_rows": settings.log_flush_rows,
        "flush_seconds": settings.log_flush_seconds,
        "on_written": metrics.log_rows.inc,
        "on_error": metrics.log_errors.inc,
    }


def _assemble(
    state: ServingState,
    *,
    open_log: Callable[[], AbstractPredictionLog | None],
    close: Callable[[], None],
    description: str,
    platform: PlatformSpec | None = None,
) -> FastAPI:
    """The FastAPI app around ``state``: lifespan (batcher, background tasks, prediction log),
    error handlers, routes (the platform's, or the standard ones with their keys), metrics."""
    settings, watcher, metrics, tasks = state.settings, state.watcher, state.metrics, state.tasks
    metrics.model_version.labels(watcher.current.record.name).set(watcher.current.record.version)
    for task in tasks:
        metrics.watch_task(task)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.predlog = open_log()
        state.batcher = MicroBatcher(
            lambda: watcher.current,
            max_rows=settings.max_batch_rows,
            on_batch=lambda batch: predict.record_batch(state, batch),
        )
        state.batcher.start()
        for task in tasks:
            task.start()
        mode = f" for {platform.describe()}" if platform else ""
        log.info("serving %s (%s)%s", watcher.current.ref, settings.model, mode)
        try:
            yield
        finally:
            for task in tasks:
                task.stop()
            await state.batcher.stop()
            if state.predlog is not None:
                state.predlog.close()
            close()

    app = FastAPI(
        title=f"conveyor: {watcher.current.record.name}",
        version=__version__,
        description=description,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # a redirect to the trailing-slash form would be built from the client's Host header
        redirect_slashes=False,
    )
    app.state.conveyor = state
    errors.install(app)
    if platform is not None:  # the platform authenticates callers; its routes come first
        app.include_router(platform.router)
        app.include_router(health.router)
        app.include_router(models.router)
    else:
        _standard_routes(app, state)
    app.add_middleware(_Metered, metrics=metrics)
    return app


def _standard_routes(app: FastAPI, state: ServingState) -> None:
    """/health, /ready, /v1/model, /metrics, /v1/predict(/file), /openapi.json and /docs."""
    secured = [] if state.keys is None else [Depends(authenticate)]
    docs = [] if state.settings.public_docs else secured
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
    if settings.platform is not None:
        return (
            f"Serves `{settings.model}` from a model bundle for {settings.platform}; the "
            "platform authenticates callers (no API key here)."
        )
    auth = (
        "Send an API key as `Authorization: Bearer KEY` or `X-API-Key: KEY` "
        "(create one with `conveyor keys create --name NAME`). /health and /ready are open."
        if settings.auth_required
        else "**Authentication is off** (--no-auth or serving.auth: none)."
    )
    auth = (
        auth.replace(
            "(create one with `conveyor keys create --name NAME`)", f"(one of ${ENV_KEYS})"
        )
        if settings.bundle
        else auth
    )
    where = (
        "a model bundle"
        if settings.bundle
        else f"the conveyor project {Path(settings.project).name}"
    )
    return f"Serves `{settings.model}` from {where}. {auth}"
