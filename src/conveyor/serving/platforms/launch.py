"""How a server starts without a project: the settings of ``conveyor serve --bundle`` and
``--platform``, and the mode ``conveyor container`` (the image's entry point) picks."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from conveyor.config import validate_section
from conveyor.errors import ConfigError
from conveyor.serving.platforms import PLATFORMS, model_dir, platform_spec

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from conveyor.serving.app import ServeSettings

Mode = Literal["sagemaker", "vertex", "azureml", "bundle", "registry"]
MODES: tuple[Mode, ...] = get_args(Mode)
SAGEMAKER_MODEL_DIR = "/opt/ml/model"
DEFAULT_PROJECT = "/app"
DEFAULT_PORT = 8000


@dataclass(frozen=True, slots=True)
class ContainerMode:
    """The mode a container serves in, and why (one line, printed at start)."""

    mode: Mode
    reason: str


def choose_mode(
    env: Mapping[str, str],
    args: Sequence[str] = (),
    *,
    exists: Callable[[str], bool] | None = None,
) -> ContainerMode:
    """The container's mode: ``$CONVEYOR_PLATFORM`` if set; else Vertex AI when
    ``$AIP_HTTP_PORT`` or ``$AIP_PREDICT_ROUTE`` is set; Azure ML when ``$AZUREML_MODEL_DIR``
    is; SageMaker when the first argument is ``serve`` (what SageMaker runs) or
    ``/opt/ml/model`` exists; else a bundle when ``$CONVEYOR_BUNDLE`` is set; else the registry.

    Args:
        env: the environment.
        args: the container's arguments.
        exists: whether a path exists (default: ``os.path.exists``).

    Raises:
        ConfigError: ``$CONVEYOR_PLATFORM`` names no mode.
    """
    import os.path

    exists = exists or os.path.exists
    given = env.get("CONVEYOR_PLATFORM", "").strip().lower()
    if given:
        if given not in MODES:
            raise ConfigError(f"$CONVEYOR_PLATFORM={given!r}: choose {', '.join(MODES)}")
        return ContainerMode(given, f"$CONVEYOR_PLATFORM={given}")
    vertex = [v for v in ("AIP_HTTP_PORT", "AIP_PREDICT_ROUTE") if env.get(v)]
    if vertex:
        return ContainerMode("vertex", f"${vertex[0]} is set (Vertex AI)")
    if env.get("AZUREML_MODEL_DIR"):
        return ContainerMode("azureml", "$AZUREML_MODEL_DIR is set (Azure ML)")
    if list(args[:1]) == ["serve"]:
        return ContainerMode("sagemaker", "the first argument is 'serve' (SageMaker)")
    if exists(SAGEMAKER_MODEL_DIR):
        return ContainerMode("sagemaker", f"{SAGEMAKER_MODEL_DIR} exists (SageMaker)")
    if env.get("CONVEYOR_BUNDLE"):
        return ContainerMode("bundle", "$CONVEYOR_BUNDLE is set")
    return ContainerMode("registry", "no platform variable, model folder or bundle is set")


def health_url(env: Mapping[str, str], args: Sequence[str] = ()) -> str:
    """Where the health probe of a container in the mode :func:`choose_mode` picks answers
    (loopback): the platform's liveness route and port, else ``/health`` on ``$PORT``.

    Raises:
        ConfigError: a malformed ``$CONVEYOR_PLATFORM`` or platform variable.
    """
    mode = choose_mode(env, args).mode
    if mode in PLATFORMS:
        try:
            spec = platform_spec(mode, env)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return f"http://127.0.0.1:{spec.port}{spec.health}"
    raw = env.get("PORT", "").strip()
    return f"http://127.0.0.1:{int(raw) if raw.isdigit() else DEFAULT_PORT}/health"


def bundle_settings(
    *,
    bundle: str | None,
    platform: str | None,
    flags: Mapping[str, Any],
    env: Mapping[str, str],
) -> ServeSettings:
    """Settings of a bundle server: the bundle (or, in a platform mode, the platform's model
    folder), the platform's port and ``0.0.0.0`` unless ``flags`` say otherwise (a None flag
    was not given).

    Raises:
        ConfigError: no bundle given nor set by the platform, an unknown platform, a flag out
            of bounds, or a malformed platform variable.
    """
    from conveyor.serving.app import ServeSettings

    given = {k: v for k, v in flags.items() if v is not None}
    if platform is not None:
        if platform not in PLATFORMS:
            raise ConfigError(f"--platform {platform!r}: choose {', '.join(PLATFORMS)}")
        bundle = bundle or model_dir(platform, env)
        try:
            port = platform_spec(platform, env).port
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        given = {"host": "0.0.0.0", "port": port} | given  # noqa: S104 - the platform must reach it
    if not bundle:
        raise ConfigError(
            f"no model bundle: pass --bundle PATH (for {platform}, set "
            f"{_model_dir_variable(platform)})"
            if platform
            else "no model bundle: pass --bundle PATH"
        )
    base: dict[str, Any] = {"bundle": bundle, "platform": platform}
    return validate_section(ServeSettings, base | given, source="conveyor serve")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _model_dir_variable(platform: str) -> str:
    return {
        "sagemaker": SAGEMAKER_MODEL_DIR,
        "azureml": "$AZUREML_MODEL_DIR",
        "vertex": "$AIP_STORAGE_URI",
    }.get(platform, "--bundle")
