"""``conveyor runs list|show``: what ran, when, how it ended."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from conveyor.cli._options import JsonOpt, ProjectOpt  # noqa: TC001 - Typer reads them at runtime
from conveyor.cli._output import console, conveyor_errors, fmt_seconds, fmt_time, print_json, styled

app = typer.Typer(help="Inspect runs: steps, timings, metrics, errors.", no_args_is_help=True)


@app.command("list")
def list_(
    project: ProjectOpt = Path("."),
    limit: Annotated[int, typer.Option(min=1, help="How many runs to show.")] = 20,
    pipeline: Annotated[str | None, typer.Option(help="Only runs of this pipeline.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Recent runs, newest first."""
    from rich.table import Table

    from conveyor.project import Project

    with conveyor_errors(), Project.load(project) as proj:
        runs = proj.metadata.list_runs(limit=limit, pipeline=pipeline)
    if json_:
        print_json(
            [
                {
                    "run_id": r.id,
                    "pipeline": r.pipeline,
                    "status": str(r.status),
                    "started_at": r.started_at,
                    "duration": r.duration,
                    "steps": {
                        str(s.status): sum(1 for x in r.steps if x.status == s.status)
                        for s in r.steps
                    },
                }
                for r in runs
            ]
        )
        return
    table = Table(title=f"runs in {proj.root}", title_justify="left")
    for col in ("run", "pipeline", "status", "started", "took", "steps"):
        table.add_column(col)
    for r in runs:
        counts: dict[str, int] = {}
        for s in r.steps:
            counts[str(s.status)] = counts.get(str(s.status), 0) + 1
        table.add_row(
            r.id[:8],
            r.pipeline,
            styled(str(r.status)),
            fmt_time(r.started_at),
            fmt_seconds(r.duration),
            ", ".join(f"{n} {k}" for k, n in counts.items()),
        )
    console().print(table if runs else "no runs yet: try `conveyor run`")


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    project: ProjectOpt = Path("."),
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Print failed steps' tracebacks.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """One run: steps with status, timing, outputs and errors; parameters and metrics."""
    from rich.table import Table

    from conveyor.cli.run import run_summary
    from conveyor.project import Project

    with conveyor_errors(), Project.load(project) as proj:
        record = proj.metadata.get_run(run_id)
    if json_:
        print_json(
            {
                **run_summary(record),
                "params": record.params,
                "tracebacks": {s.name: s.traceback for s in record.steps if s.traceback},
            }
        )
        return
    out = console()
    out.print(
        f"run [bold]{record.id}[/] of [bold]{record.pipeline}[/]: {styled(str(record.status))}"
    )
    out.print(
        f"  started {fmt_time(record.started_at)}, took {fmt_seconds(record.duration)}, "
        f"executor {record.executor}, host {record.host}"
    )
    out.print(f"  commit {record.git_commit or '-'}   config {(record.config_hash or '-')[:12]}")
    steps = Table(box=None, header_style="bold")
    for col in ("step", "status", "time", "outputs"):
        steps.add_column(col)
    for s in record.steps:
        outputs = ", ".join(f"{o.name}={o.digest[:10]}" for o in s.outputs)
        steps.add_row(s.name, styled(str(s.status)), fmt_seconds(s.duration), outputs)
    out.print(steps)
    for s in record.steps:
        if s.error:
            out.print(f"[red]{s.name}:[/] {escape(s.error)}", soft_wrap=True)
            if traceback and s.traceback:
                out.print(s.traceback, markup=False, highlight=False)
    if record.metrics:
        table = Table("metric", "value", box=None, header_style="bold")
        for key, value in sorted(record.metrics.items()):
            table.add_row(key, f"{value:.4g}")
        out.print(table)
