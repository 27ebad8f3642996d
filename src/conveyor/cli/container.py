"""``conveyor container``: the image's entry point; picks the serving mode from the
environment (platform variables, model folders, ``$CONVEYOR_BUNDLE``) and serves in-process,
so SIGTERM to PID 1 stops the server gracefully."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from conveyor.cli._output import console, conveyor_errors


def container(
    args: Annotated[
        list[str] | None,
        typer.Argument(help="What the platform passes (SageMaker: serve).", show_default=False),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", envvar="CONVEYOR_NO_AUTH", help="Bundle mode: serve WITHOUT API keys."
        ),
    ] = False,
    healthcheck: Annotated[
        bool,
        typer.Option(
            "--healthcheck",
            help="Probe the running server of this container (the image's HEALTHCHECK): exit 0 "
            "when its mode's health route answers 2xx.",
        ),
    ] = False,
) -> None:
    """Serve in the mode the environment asks for: $CONVEYOR_PLATFORM; else Vertex AI
    ($AIP_HTTP_PORT / $AIP_PREDICT_ROUTE), Azure ML ($AZUREML_MODEL_DIR), SageMaker (argument
    `serve` or /opt/ml/model), a bundle ($CONVEYOR_BUNDLE) or the registry ($CONVEYOR_PROJECT,
    default /app; port $PORT, default 8000)."""
    from conveyor.cli.serve import run_bundle, run_registry
    from conveyor.serving.platforms.launch import (
        DEFAULT_PORT,
        DEFAULT_PROJECT,
        choose_mode,
    )

    env = dict(os.environ)
    if healthcheck:
        _probe(env, args or _server_args())
        return
    with conveyor_errors():
        choice = choose_mode(env, args or [])
    console(stderr=True).print(f"conveyor container: {choice.mode} mode ({choice.reason})")
    bundle = env.get("CONVEYOR_BUNDLE") or None
    log_dir = env.get("CONVEYOR_LOG_DIR") or None
    if choice.mode == "registry":
        flags: dict[str, Any] = {"host": "0.0.0.0", "port": _port(env, DEFAULT_PORT)}  # noqa: S104
        project = Path(env.get("CONVEYOR_PROJECT") or DEFAULT_PROJECT)
        run_registry(project, None, flags | {"auth": "none" if no_auth else None})
    elif choice.mode == "bundle":
        flags = {
            "host": "0.0.0.0",  # noqa: S104 - a container serves its network
            "port": _port(env, DEFAULT_PORT),
            "auth": "none" if no_auth else None,
            "log_dir": log_dir,
        }
        run_bundle(bundle, None, flags, env=env)
    else:
        run_bundle(bundle, choice.mode, {"log_dir": log_dir}, env=env)


def _server_args() -> list[str]:
    """The arguments the container's PID 1 (``conveyor container ARGS``) was started with: a
    health check runs as another process, and SageMaker's mode shows only in them."""
    try:
        argv = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []
    if b"container" not in argv:
        return []
    return [a.decode(errors="replace") for a in argv[argv.index(b"container") + 1 :] if a]


def _probe(env: dict[str, str], args: list[str]) -> None:
    import urllib.error
    import urllib.request

    from conveyor.cli._output import EXIT_FAILURE
    from conveyor.serving.platforms.launch import health_url

    with conveyor_errors():
        url = health_url(env, args)
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 - loopback URL
            ok = 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as exc:
        console(stderr=True).print(f"unhealthy: {url}: {exc}")
        raise typer.Exit(EXIT_FAILURE) from None
    if not ok:
        raise typer.Exit(EXIT_FAILURE)


def _port(env: dict[str, str], default: int) -> int | None:
    raw = env.get("PORT", "").strip()
    return int(raw) if raw.isdigit() else default
