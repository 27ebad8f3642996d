"""``conveyor build-image``: build the project's Dockerfile with docker, podman or buildah."""

from __future__ import annotations

import shutil
import subprocess
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from conveyor.cli._options import ProjectOpt  # noqa: TC001 - Typer reads it at runtime
from conveyor.cli._output import EXIT_FAILURE, EXIT_USAGE, console

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""The host's CA bundle (Debian's path): mounted into daemonless builds so pip inside a RUN
trusts what the host trusts (a TLS-intercepting proxy included)."""


class Tool(StrEnum):
    """The image builders, in the order they are tried."""

    docker = "docker"
    podman = "podman"
    buildah = "buildah"


class NoBuilderError(RuntimeError):
    """No usable image builder on this machine (or not the one asked for)."""


def docker_ready(executable: str) -> bool:
    """Whether ``docker`` reaches a daemon (a Docker engine, or podman's API via DOCKER_HOST):
    the CLI alone cannot build anything."""
    try:
        proc = subprocess.run([executable, "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def pick_tool(
    requested: Tool | None,
    *,
    which: Callable[[str], str | None] = shutil.which,
    daemon: Callable[[str], bool] = docker_ready,
) -> tuple[Tool, str]:
    """The builder to use and its executable: ``requested``, else the first of docker (when its
    daemon answers), podman, buildah.

    Args:
        requested: The ``--tool`` given, or None for the first available.
        which: Finds an executable on PATH (``shutil.which``).
        daemon: Whether a docker executable reaches its daemon.

    Raises:
        NoBuilderError: the requested tool is missing, or none is available.
    """
    tried: list[str] = []
    for tool in [requested] if requested else list(Tool):
        path = which(tool.value)
        if path is None:
            tried.append(f"{tool.value}: not installed")
        elif tool is Tool.docker and not daemon(path):
            tried.append(f"docker: {path} cannot reach a Docker daemon")
        else:
            return tool, path
    raise NoBuilderError(
        "no image builder available ("
        + "; ".join(tried)
        + "). Install docker (with a running daemon), or podman or buildah, which need none "
        "(Debian: apt-get install podman buildah runc)."
    )


def build_command(
    tool: Tool,
    executable: str,
    context: Path,
    *,
    tag: str,
    build_args: Sequence[str] = (),
    ca_bundle: Path | None = None,
) -> list[str]:
    """The command line that builds ``context``'s Dockerfile as ``tag``.

    podman and buildah build without a daemon: chroot isolation and the host's network (no
    namespaces or bridges needed, as in a container or CI sandbox), Docker image format (the OCI
    format drops HEALTHCHECK), and, when ``ca_bundle`` is given, the host's CA bundle mounted
    read-only where Debian keeps it, with ``PIP_CERT`` pointing pip at it.

    Args:
        tool: The builder.
        executable: Its path.
        context: The build context (the project folder, holding the Dockerfile).
        tag: The image name.
        build_args: ``KEY=VALUE`` build arguments.
        ca_bundle: The host CA bundle to mount (daemonless builders only), or None.
    """
    argv = [executable, "bud" if tool is Tool.buildah else "build", "--tag", tag]
    if tool is not Tool.docker:
        argv += ["--isolation", "chroot", "--network", "host", "--format", "docker", "--layers"]
        if ca_bundle is not None:
            argv += [
                "--volume",
                f"{ca_bundle}:{CA_BUNDLE}:ro",
                "--build-arg",
                f"PIP_CERT={CA_BUNDLE}",
            ]
    for arg in build_args:
        argv += ["--build-arg", arg]
    return [*argv, str(context)]


def default_tag(project: Path) -> str:
    """``PROJECT-server:latest``, the image name the Dockerfile's comments use."""
    from conveyor.cli.init import image_name

    config = project / "conveyor.yaml"
    name = image_name(config) if config.is_file() else f"{project.resolve().name}-server"
    return f"{name}:latest"


def build_image(
    project: ProjectOpt = Path("."),
    tag: Annotated[
        str | None, typer.Option("--tag", "-t", help="Image name (default: PROJECT-server:latest).")
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(help="Base image, the Dockerfile's BASE (default there: python:3.11-slim)."),
    ] = None,
    spec: Annotated[
        str | None,
        typer.Option(help="What pip installs, the Dockerfile's CONVEYOR_SPEC (a wheel, a URL)."),
    ] = None,
    build_arg: Annotated[
        list[str] | None, typer.Option("--build-arg", help="KEY=VALUE (repeatable).")
    ] = None,
    tool: Annotated[
        Tool | None,
        typer.Option(help="docker, podman or buildah (default: the first that works)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the build command; do not run it.")
    ] = False,
) -> None:
    """Build the project's image (its Dockerfile, from `conveyor init`) with docker, podman or
    buildah, whichever is available."""
    err = console(stderr=True)
    if not (project / "Dockerfile").is_file():
        err.print(
            f"[red]error:[/] no Dockerfile in {escape(str(project))}: "
            f"`conveyor init {escape(str(project))}` writes one"
        )
        raise typer.Exit(EXIT_FAILURE)
    args = [*(build_arg or [])]
    if bad := [a for a in args if "=" not in a]:
        err.print(f"[red]error:[/] --build-arg {escape(bad[0])!r}: expected KEY=VALUE")
        raise typer.Exit(EXIT_USAGE)
    args += [f"BASE={base}"] if base else []
    args += [f"CONVEYOR_SPEC={spec}"] if spec else []
    try:
        chosen, executable = pick_tool(tool)
    except NoBuilderError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_FAILURE) from None
    image = tag or default_tag(project)
    argv = build_command(
        chosen,
        executable,
        project,
        tag=image,
        build_args=args,
        ca_bundle=CA_BUNDLE if CA_BUNDLE.is_file() else None,
    )
    _run(argv, image=image, tool=chosen, dry_run=dry_run)


def _run(argv: list[str], *, image: str, tool: Tool, dry_run: bool) -> None:
    """Run the build (its output streams through), or only print it."""
    import shlex

    err = console(stderr=True)
    if dry_run:
        console().print(shlex.join(argv), soft_wrap=True, markup=False, highlight=False)
        return
    err.print(f"building [bold]{escape(image)}[/] with {tool.value}", soft_wrap=True)
    start = time.perf_counter()
    status = subprocess.run(argv, check=False).returncode
    if status != 0:
        err.print(f"[red]error:[/] {tool.value} exited with status {status}")
        raise typer.Exit(EXIT_FAILURE)
    err.print(f"built [bold]{escape(image)}[/] in {time.perf_counter() - start:.0f} s")
