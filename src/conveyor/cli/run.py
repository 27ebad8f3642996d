"""``conveyor run``: run a pipeline of the project with live progress."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from conveyor.cli._options import JsonOpt, ProjectOpt  # noqa: TC001 - Typer reads them at runtime
from conveyor.cli._output import (
    EXIT_FAILURE,
    console,
    conveyor_errors,
    fmt_seconds,
    print_json,
    styled,
)


def run(
    pipeline: Annotated[
        str, typer.Argument(help="Pipeline to run: train, or one from `pipelines:`.")
    ] = "train",
    project: ProjectOpt = Path("."),
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: key.path=value (repeatable)."),
    ] = None,
    executor: Annotated[
        str | None, typer.Option(help="local or dask (default: from conveyor.yaml).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Parallel steps (local) or worker processes (dask).")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Re-run every step even if a cached result exists.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Run a pipeline; steps whose code, params and inputs are unchanged come from the cache."""
    from conveyor.cli._progress import LiveProgress
    from conveyor.project import Project
    from conveyor.store.metadata import StepStatus

    err = console(stderr=True)
    progress = LiveProgress(err)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # record the run as interrupted, then exit
    with conveyor_errors():
        with Project.load(project, overrides=set_ or []) as proj:
            try:
                result = proj.run(
                    pipeline,
                    executor=executor,
                    workers=workers,
                    use_cache=not no_cache,
                    hooks=progress,
                )
            except KeyboardInterrupt:
                progress.stop()
                err.print(
                    "[magenta]interrupted[/]: the run is recorded as interrupted; "
                    "run again to resume from the cache"
                )
                raise typer.Exit(130) from None
            record = proj.metadata.get_run(result.run_id)
            reg = result.outputs.get("registration")
            model = proj.load_artifact(reg.digest) if reg is not None else None
            checked = result.outputs.get("validation_report")
            validation = proj.load_artifact(checked.digest) if checked is not None else None
    summary = run_summary(record)
    if json_:
        print_json({**summary, "model": model, "validation": validation})
    if validation is not None and validation["failures"] and not json_:
        from conveyor.cli.data import render_report

        render_report(err, validation)
    _print_summary(err, record, result.recovered)
    if model is not None:
        fresh = result.steps.get("register") is StepStatus.SUCCEEDED
        what = "registered" if fresh else "unchanged (registration reused from the cache)"
        err.print(f"model [bold]{model['name']}:{model['version']}[/] {what}")
    if not result.ok:
        raise typer.Exit(EXIT_FAILURE)


def run_summary(record: Any) -> dict[str, Any]:
    """A run record as plain data for ``--json``."""
    return {
        "run_id": record.id,
        "pipeline": record.pipeline,
        "status": str(record.status),
        "started_at": record.started_at,
        "duration": record.duration,
        "git_commit": record.git_commit,
        "config_hash": record.config_hash,
        "executor": record.executor,
        "error": record.error,
        "steps": [
            {
                "name": s.name,
                "status": str(s.status),
                "duration": s.duration,
                "cached_from": s.cached_from,
                "error": s.error,
                "outputs": {o.name: o.digest for o in s.outputs},
            }
            for s in record.steps
        ],
        "metrics": record.metrics,
    }


def _print_summary(err: Any, record: Any, recovered: list[str]) -> None:
    for run_id in recovered:
        err.print(f"[magenta]note:[/] earlier run {run_id[:8]} had died; marked interrupted")
    cached = sum(1 for s in record.steps if str(s.status) == "cached")
    if cached == len(record.steps) and cached:
        err.print(f"nothing changed: all {cached} steps cached")
    elif cached:
        err.print(f"{cached} of {len(record.steps)} steps cached")
    for s in record.steps:
        if str(s.status) == "failed":
            err.print(f"[bold red]step {s.name} failed:[/] {escape(s.error or '')}", soft_wrap=True)
            err.print(f"  full traceback: conveyor runs show {record.id[:8]} --traceback")
    headline = {k: v for k, v in record.metrics.items() if k.startswith("test.")}
    if headline:
        err.print("  ".join(f"{k.removeprefix('test.')}={v:.3f}" for k, v in headline.items()))
    err.print(
        f"run [bold]{record.id[:8]}[/] {styled(str(record.status))} in "
        f"{fmt_seconds(record.duration)}"
    )


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
