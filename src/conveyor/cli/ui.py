"""``conveyor ui``: the project's runs, models, lineage, monitoring and audit in a browser."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from conveyor.cli._options import ProjectOpt  # noqa: TC001 - Typer reads it at runtime
from conveyor.cli._output import EXIT_USAGE, console, conveyor_errors

SECRET_ENV = "CONVEYOR_UI_SECRET"  # noqa: S105 - the variable's name, not a secret
MIN_SECRET = 32


def ui(
    project: ProjectOpt = Path("."),
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8765,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="No sign-in (loopback addresses only): for a laptop."),
    ] = False,
) -> None:
    """Serve the UI: sign in with an API key that has the read scope (actions need admin).

    Sessions are signed with $CONVEYOR_UI_SECRET, or a random secret (sessions then end when the
    server restarts).
    """
    import uvicorn

    from conveyor.project import Project
    from conveyor.serving.platforms.launch import is_loopback
    from conveyor.ui.app import UiState, create_app

    err = console(stderr=True)
    if no_auth and not is_loopback(host):
        err.print(f"[bold red]error:[/] --no-auth only on a loopback address, not {escape(host)}")
        raise typer.Exit(EXIT_USAGE)
    secret = os.environ.get(SECRET_ENV, "").encode() or secrets.token_bytes(32)
    if len(secret) < MIN_SECRET:
        err.print(
            f"[bold red]error:[/] ${SECRET_ENV} is shorter than {MIN_SECRET} characters: "
            "session cookies signed with it could be forged; use e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
        raise typer.Exit(EXIT_USAGE)
    with conveyor_errors(), Project.load(project) as proj:
        promote = proj.config.registry.promote if proj.config.registry else None
        state = UiState(
            proj.metadata,
            proj.artifacts,
            proj.config.project,
            auth=not no_auth,
            secret=secret,
            promote_alias=promote.alias if promote else "production",
            require_approval=promote.require_approval if promote else False,
        )
        app = create_app(state)
        if no_auth:
            err.print(
                "[yellow]warning:[/] --no-auth: anyone who can reach "
                f"{escape(host)}:{port} can read everything and approve or promote models"
            )
        err.print(f"conveyor ui on http://{escape(host)}:{port}/ (Ctrl-C to stop)")
        uvicorn.run(app, host=host, port=port, log_level="warning")
