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
    native_stdout_to_stderr,
    print_json,
    styled,
    write_report,
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
        int | None,
        typer.Option(min=1, max=1024, help="Parallel steps (local) or worker processes (dask)."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Re-run every step even if a cached result exists.")
    ] = False,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Say for each step why it was a cache hit or miss (what changed)."
        ),
    ] = False,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id",
            help="With --step or --plan: the run, named by your orchestrator's execution id "
            "(or a conveyor run id); the first step to use it creates the run.",
        ),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option(
            "--step",
            help="Run only this step of the run --run-id, its inputs read from the steps "
            "before it (what a cloud pipeline step executes).",
        ),
    ] = None,
    plan: Annotated[
        bool,
        typer.Option("--plan", help="Create the run (every step pending), print its id, stop."),
    ] = False,
    summary_file: Annotated[
        Path | None,
        typer.Option("--summary", help="With --step: write its status and outputs as JSON here."),
    ] = None,
    gate_passed: Annotated[
        Path | None,
        typer.Option(
            "--gate-passed", help="With --step gate: write true or false here (for conditions)."
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Run a pipeline; steps whose code, params and inputs are unchanged come from the cache.

    With --run-id and --step, run one step of a run instead, as an orchestrator does.
    """
    from conveyor.cli import _run_step
    from conveyor.cli._progress import LiveProgress
    from conveyor.contracts import Registration
    from conveyor.project import Project
    from conveyor.store.metadata import StepStatus

    _run_step.check_options(
        run_id=run_id,
        step=step,
        plan=plan,
        summary=summary_file,
        gate_passed=gate_passed,
        workers=workers,
    )
    if plan or step is not None:
        with conveyor_errors(), Project.load(project, overrides=set_ or []) as proj:
            if step is None:
                _run_step.plan_run(proj, pipeline, run_id, json_=json_)
                return
            assert run_id is not None  # check_options
            _run_step.run_one_step(
                proj,
                pipeline,
                run_id,
                step,
                executor=executor,
                use_cache=not no_cache,
                summary=summary_file,
                gate_passed=gate_passed,
                json_=json_,
            )
        return
    err = console(stderr=True)
    progress = LiveProgress(err)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # record the run as interrupted, then exit
    with conveyor_errors(), native_stdout_to_stderr():
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
            verdicts = explain_verdicts(proj.metadata, record.id) if explain else None
            found = {
                name: proj.load_artifact(ref.digest)
                for name, ref in result.outputs.items()
                if name in ("registration", "rejection", "validation_report", "report_html")
            }
            report_path = export_report(proj.root, record.id, found.pop("report_html", None))
    chosen = found.get("registration") or found.get("rejection")
    model = None if chosen is None else Registration.of(chosen)
    validation = found.get("validation_report")
    summary = run_summary(record)
    if json_:
        print_json(
            {
                **summary,
                "model": None if model is None else model.to_json(),
                "validation": validation,
                "report": str(report_path) if report_path else None,
                **({} if verdicts is None else {"explain": verdicts}),
            }
        )
    if validation is not None and validation["failures"] and not json_:
        from conveyor.cli.data import render_report

        render_report(err, validation)
    if verdicts is not None and not json_:
        print_verdicts(err, verdicts)
    _print_summary(err, record, result.recovered)
    if model is not None:
        fresh = result.steps.get("register") in (StepStatus.SUCCEEDED, StepStatus.FAILED)
        what = "registered" if fresh else "unchanged (registration reused from the cache)"
        err.print(
            f"model [bold]{model.name}:{model.version}[/] {what}: "
            f"{styled(model.status)}, {escape(model.reason)}"
        )
        if model.alias is not None:
            err.print(f"  promoted: {model.name}@{model.alias} -> v{model.version}")
    if report_path is not None:
        err.print(f"report: {report_path}")
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
        if str(s.status) == "failed" and str(record.status) == "gated":
            err.print(f"[yellow]gated at step {s.name}:[/] {escape(s.error or '')}", soft_wrap=True)
        elif str(s.status) == "failed":
            err.print(f"[bold red]step {s.name} failed:[/] {escape(s.error or '')}", soft_wrap=True)
            err.print(f"  full traceback: conveyor runs show {record.id[:8]} --traceback")
    headline = {k: v for k, v in record.metrics.items() if k.startswith("test.")}
    if headline:
        err.print("  ".join(f"{k.removeprefix('test.')}={v:.3f}" for k, v in headline.items()))
    err.print(
        f"run [bold]{record.id[:8]}[/] {styled(str(record.status))} in "
        f"{fmt_seconds(record.duration)}"
    )


def explain_verdicts(metadata: Any, run_id: str) -> dict[str, str]:
    """Step name -> why it was a cache hit or miss."""
    from conveyor.runner.explain import explain_run

    return {e.step: e.reason for e in explain_run(metadata, run_id)}


def print_verdicts(out: Any, verdicts: dict[str, str]) -> None:
    """The ``--explain`` lines: one per step."""
    width = max((len(name) for name in verdicts), default=0)
    out.print("[bold]cache:[/]")
    for name, reason in verdicts.items():
        colour = "green" if reason.startswith("hit") else "yellow"
        out.print(f"  {escape(name.ljust(width))}  [{colour}]{escape(reason)}[/]", soft_wrap=True)


def export_report(root: Path, run_id: str, html: bytes | None) -> Path | None:
    """Write the run's HTML report next to the store, for people to open (the artifact stays
    the source of truth)."""
    return None if html is None else write_report(root, f"run-{run_id[:8]}.html", html)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
