"""``conveyor runs list|show``: what ran, when, how it ended."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from conveyor.cli._options import JsonOpt, ProjectOpt  # noqa: TC001 - Typer reads them at runtime
from conveyor.cli._output import console, conveyor_errors, fmt_seconds, fmt_time, print_json, styled

app = typer.Typer(help="Inspect runs: steps, timings, metrics, errors.", no_args_is_help=True)


@app.command("list")
def list_(
    project: ProjectOpt = Path("."),
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="How many runs to show.")] = 20,
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
    explain: Annotated[
        bool, typer.Option("--explain", help="Say for each step why it was a cache hit or miss.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """One run: steps with status, timing, outputs and errors; parameters and metrics."""
    from rich.table import Table

    from conveyor.cli.run import explain_verdicts, print_verdicts, run_summary
    from conveyor.project import Project

    with conveyor_errors(), Project.load(project) as proj:
        record = proj.metadata.get_run(run_id)
        trials = proj.metadata.list_trials(record.id)
        verdicts = explain_verdicts(proj.metadata, record.id) if explain else None
    if json_:
        print_json(
            {
                **run_summary(record),
                "params": record.params,
                "trials": trials,
                "tracebacks": {s.name: s.traceback for s in record.steps if s.traceback},
                **({} if verdicts is None else {"explain": verdicts}),
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
    if verdicts is not None:
        print_verdicts(out, verdicts)
    for s in record.steps:
        if s.error:
            out.print(f"[red]{s.name}:[/] {escape(s.error)}", soft_wrap=True)
            if traceback and s.traceback:
                out.print(s.traceback, markup=False, highlight=False)
    if trials:
        out.print(_trials_table(trials, record.metrics))
    if record.metrics:
        table = Table("metric", "value", box=None, header_style="bold")
        for key, value in sorted(record.metrics.items()):
            table.add_row(key, f"{value:.4g}")
        out.print(table)


@app.command("compare")
def compare(
    runs: Annotated[list[str], typer.Argument(help="Two or more run ids (or unique prefixes).")],
    project: ProjectOpt = Path("."),
    all_params: Annotated[
        bool, typer.Option("--all", help="Show every parameter, not only those that differ.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Runs side by side: the parameters that differ and every metric."""
    from rich.table import Table

    from conveyor.project import Project

    if len(runs) < 2:
        console(stderr=True).print("[red]error:[/] give at least two runs to compare")
        raise typer.Exit(2)
    with conveyor_errors(), Project.load(project) as proj:
        records = [proj.metadata.get_run(r) for r in runs]
    keys = sorted({k for r in records for k in r.params})
    differing = [k for k in keys if len({repr(r.params.get(k)) for r in records}) > 1]
    metric_keys = sorted({k for r in records for k in r.metrics})
    if json_:
        print_json(
            {
                "runs": [r.id for r in records],
                "params": {
                    k: [r.params.get(k) for r in records]
                    for k in (keys if all_params else differing)
                },
                "metrics": {k: [r.metrics.get(k) for r in records] for k in metric_keys},
            }
        )
        return
    table = Table(box=None, header_style="bold")
    table.add_column("")
    for r in records:
        table.add_column(f"{r.id[:8]} ({styled(str(r.status))})", justify="right")
    shown = keys if all_params else differing
    for k in shown:
        table.add_row(
            f"[dim]param[/] {escape(k)}", *(escape(repr(r.params.get(k))) for r in records)
        )
    for k in metric_keys:
        values = [r.metrics.get(k) for r in records]
        table.add_row(escape(k), *("-" if v is None else f"{v:.4g}" for v in values))
    out = console()
    if not shown:
        out.print("parameters: identical" + ("" if all_params else " (use --all to list)"))
    out.print(table)


def _trials_table(trials: list[dict[str, Any]], metrics: dict[str, float]) -> Any:
    """Tuning summary per candidate: trials by state and the best value with its params (the
    best as the tuner judged it, recorded as the ``tune.<candidate>.best`` metric)."""
    from rich.table import Table

    table = Table(
        "candidate",
        "trials",
        "complete",
        "pruned",
        "failed",
        "best",
        "best params",
        box=None,
        header_style="bold",
        title="tuning",
        title_justify="left",
    )
    by_candidate: dict[str, list[dict[str, Any]]] = {}
    for t in trials:
        by_candidate.setdefault(t["candidate"], []).append(t)
    for name, rows in by_candidate.items():
        target = metrics.get(f"tune.{name}.best")
        best = next((t for t in rows if t["state"] == "complete" and t["value"] == target), None)
        states = [t["state"] for t in rows]
        table.add_row(
            name,
            str(len(rows)),
            str(states.count("complete")),
            str(states.count("pruned")),
            str(states.count("failed")),
            "-" if best is None else f"{best['value']:.4g}",
            "-" if best is None else escape(str(best["params"])),
        )
    return table
