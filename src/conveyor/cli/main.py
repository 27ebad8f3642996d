"""Entry point: ``conveyor`` and its command groups. Heavy libraries load inside commands."""

from __future__ import annotations

import typer

from conveyor._version import __version__
from conveyor.cli import (
    container,
    data,
    demo,
    export,
    image,
    init,
    keys,
    lineage,
    models,
    monitor,
    run,
    runs,
    serve,
    ui,
)

app = typer.Typer(
    name="conveyor",
    help="The machine-learning assembly line, as code and config.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("init")(init.init)
app.command("run")(run.run)
app.add_typer(runs.app, name="runs")
app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.command("lineage")(lineage.lineage)
app.command("audit")(lineage.audit)
app.command("reproduce")(lineage.reproduce)
app.command("serve")(serve.serve)
app.command("ui")(ui.ui)
app.command("predict")(serve.predict)
app.add_typer(keys.app, name="keys")
app.command("monitor")(monitor.monitor)
app.command("watch")(monitor.watch)
app.command("demo")(demo.demo)
app.add_typer(export.app, name="export")
app.command("container")(container.container)
app.command("build-image")(image.build_image)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"conveyor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """conveyor: ingest -> validate -> train -> evaluate -> register -> serve -> monitor."""


def main() -> None:
    """Console-script entry point."""
    app()
