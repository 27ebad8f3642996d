"""``conveyor run --plan`` and ``conveyor run --run-id KEY --step NAME``: a run driven one step
at a time by an orchestrator (a cloud pipeline, Airflow, a shell loop)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from conveyor.cli._output import (
    EXIT_FAILURE,
    EXIT_USAGE,
    console,
    conveyor_errors,
    fmt_seconds,
    print_json,
    styled,
)

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.project import Project
    from conveyor.runner.orchestrated import StepRun


def check_options(
    *,
    run_id: str | None,
    step: str | None,
    plan: bool,
    summary: Path | None,
    gate_passed: Path | None,
    workers: int | None,
) -> None:
    """Refuse option combinations that mean nothing (exit 2 with the reason)."""
    problem = None
    if step is not None and run_id is None:
        problem = "--step needs --run-id KEY (the orchestrator's execution id, or a run id)"
    elif plan and step is not None:
        problem = "--plan creates the run; give --step in the next commands, not with --plan"
    elif run_id is not None and step is None and not plan:
        problem = "--run-id goes with --step NAME (run one step) or --plan (create the run)"
    elif (summary is not None or gate_passed is not None) and step is None:
        problem = "--summary and --gate-passed describe one step: give --step NAME"
    elif workers is not None and (step is not None or plan):
        problem = "--workers sets how many steps run at once: one step runs alone"
    if problem is not None:
        console(stderr=True).print(f"[bold red]error:[/] {escape(problem)}", soft_wrap=True)
        raise typer.Exit(EXIT_USAGE)


def plan_run(proj: Project, pipeline: str, key: str | None, *, json_: bool) -> None:
    """Create the run (every step pending) and print its id."""
    with conveyor_errors():
        record = proj.plan(pipeline, key=key)
    if json_:
        print_json(
            {
                "run_id": record.id,
                "pipeline": record.pipeline,
                "status": str(record.status),
                "steps": [{"name": s.name, "status": str(s.status)} for s in record.steps],
            }
        )
        return
    err = console(stderr=True)
    err.print(
        f"run [bold]{record.id[:8]}[/] of {escape(record.pipeline)}: "
        f"{len(record.steps)} steps ({', '.join(escape(s.name) for s in record.steps)})"
    )
    err.print(f"run each: conveyor run {escape(record.pipeline)} --run-id {record.id} --step NAME")
    typer.echo(record.id)


def run_one_step(
    proj: Project,
    pipeline: str,
    key: str,
    step: str,
    *,
    executor: str | None,
    use_cache: bool,
    summary: Path | None,
    gate_passed: Path | None,
    json_: bool,
) -> None:
    """Run one step, write the files the orchestrator reads, exit 1 when it failed."""
    err = console(stderr=True)
    with conveyor_errors():
        if not json_:
            err.print(f"step [bold]{escape(step)}[/] of run --run-id {escape(key)}: starting")
        result = proj.run_step(pipeline, key, step, executor=executor, use_cache=use_cache)
        gate = _gate(proj, result)
        if gate_passed is not None and gate is None:
            err.print(
                f"[bold red]error:[/] step {escape(step)!r} produced no gate report: --gate-passed "
                "is for the step that checks the quality gates"
            )
            raise typer.Exit(EXIT_FAILURE)
    data = _summary(result, gate)
    if summary is not None:
        _write(summary, json.dumps(data, indent=2, sort_keys=True) + "\n")
    if gate_passed is not None and gate is not None:
        _write(gate_passed, "true" if gate["passed"] else "false")
    if json_:
        print_json(data)
    else:
        _print(err, result, gate)
    if not result.ok:
        raise typer.Exit(EXIT_FAILURE)


def _gate(proj: Project, result: StepRun) -> dict[str, Any] | None:
    """The verdict of the gate report among the step's outputs, if it has one."""
    from conveyor.contracts import GateReport

    ref = next((o for o in result.outputs if o.kind == GateReport.KIND), None)
    if ref is None:
        return None
    report = GateReport.of(proj.load_artifact(ref.digest))
    return {"passed": report.passed, "failed": list(report.failed)}


def _summary(result: StepRun, gate: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "run_id": result.run_id,
        "step": result.step,
        "status": str(result.status),
        "already_done": result.already_done,
        "run_status": str(result.run_status),
        "outputs": {o.name: o.digest for o in result.outputs},
        "duration": round(result.duration, 3),
        "error": result.error,
    }
    if gate is not None:
        data["gate"] = gate
    return data


def _print(err: Any, result: StepRun, gate: dict[str, Any] | None) -> None:
    run = result.run_id[:8]
    if result.already_done:
        err.print(f"step {escape(result.step)} of run {run} already done ({result.status})")
    elif result.ok:
        err.print(
            f"step {escape(result.step)} of run {run} {styled(str(result.status))} in "
            f"{fmt_seconds(result.duration)}: {', '.join(o.name for o in result.outputs)}"
        )
    else:
        what = "gated" if result.gated else "failed"
        err.print(
            f"[bold red]step {escape(result.step)} of run {run} {what}:[/] "
            f"{escape(result.error or '')}",
            soft_wrap=True,
        )
        if not result.gated:
            err.print(f"  full traceback: conveyor runs show {run} --traceback")
    if gate is not None:
        verdict = "passed" if gate["passed"] else "failed: " + "; ".join(gate["failed"])
        err.print(f"  quality gates {escape(verdict)}")
    err.print(f"run {run} {styled(str(result.run_status))}")


def _write(path: Path, text: str) -> None:
    """Write a file an orchestrator reads (its folder may not exist yet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
