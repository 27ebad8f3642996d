"""``conveyor monitor`` (one drift check) and ``conveyor watch`` (the closed loop)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape

from conveyor.cli._options import JsonOpt, ProjectOpt  # noqa: TC001 - Typer reads them at runtime
from conveyor.cli._output import (
    EXIT_FAILURE,
    EXIT_USAGE,
    console,
    conveyor_errors,
    print_json,
    write_report,
)

if TYPE_CHECKING:
    from conveyor.config import MonitoringConfig
    from conveyor.monitoring.monitor import CheckResult
    from conveyor.project import Project
    from conveyor.watch import CycleResult

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="NAME@ALIAS or NAME:VER (default: the served alias)."),
]


def monitor(
    model: ModelOpt = None,
    current: Annotated[
        str | None,
        typer.Option("--current", "-c", help="CSV/Parquet of inputs instead of the log."),
    ] = None,
    window: Annotated[
        float | None,
        typer.Option("--window", help="Hours of prediction log (monitoring.window_hours)."),
    ] = None,
    labels: Annotated[
        str | None, typer.Option("--labels", help="CSV/Parquet of true labels: performance too.")
    ] = None,
    on: Annotated[
        str | None,
        typer.Option(
            "--on", help="Join labels on this column (default: monitoring.id_column or request_id)."
        ),
    ] = None,
    no_alerts: Annotated[bool, typer.Option("--no-alerts", help="Do not send alerts.")] = False,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Exit 1 when the dataset drifted (for CI).")
    ] = False,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="local: in this process; dask: --current's partitions scored and sketched as "
            "tasks on a Dask cluster. A folder or glob of Parquet files is always checked "
            "partition by partition (one in memory at a time).",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="--executor dask: the scheduler (tcp://host:8786). Default: executor.address "
            "when conveyor.yaml's executor is dask, else a local cluster for the command.",
        ),
    ] = None,
    project: ProjectOpt = Path("."),
    json_: JsonOpt = False,
) -> None:
    """Drift (and, with --labels, performance) of the served model: a report and alerts."""
    from conveyor.project import Project
    from conveyor.watch import run_check

    _check_flags(current, labels, executor, address)
    with conveyor_errors(), Project.load(project) as proj:
        mon = monitoring_settings(proj, window_hours=window, id_column=on)
        if current is not None and (executor == "dask" or _partitioned(proj.root, current)):
            if labels is not None:
                _usage_error("--labels needs the rows in memory: give --current one file")
            result = _check_partitions(proj, model, current, mon, executor, address, no_alerts)
            path = export_report(proj.root, result)
            _show(result, path, json_=json_, fail_on_drift=fail_on_drift)
            return
        kwargs: dict[str, object] = {"window_seconds": mon.window_hours * 3600}
        if current is not None:
            kwargs.update(current=_table(proj, current), source=current)
        if labels is not None:
            target = proj.config.data.target if proj.config.data else "target"
            kwargs.update(
                labels=_table(proj, labels),
                label_key=mon.id_column or "request_id",
                target=target,
            )
        if no_alerts:
            kwargs["channels"] = []
        result = run_check(proj, proj.model_ref(model), **kwargs)
        path = export_report(proj.root, result)
    _show(result, path, json_=json_, fail_on_drift=fail_on_drift)


def _show(result: CheckResult, path: Path, *, json_: bool, fail_on_drift: bool) -> None:
    if json_:
        print_json({**result.report, "report_path": str(path), "alerts": result.alerts})
    else:
        _print(result, path)
    if fail_on_drift and result.drift.dataset_drift:
        raise typer.Exit(EXIT_FAILURE)


def _check_flags(
    current: str | None, labels: str | None, executor: str, address: str | None
) -> None:
    """Exit 2 on flags that do not go together."""
    problem = None
    if executor not in ("local", "dask"):
        problem = f"--executor {executor!r}: choose local or dask"
    elif address is not None and executor != "dask":
        problem = "--address goes with --executor dask"
    elif executor == "dask" and current is None:
        problem = "--executor dask checks --current's files: give --current"
    elif executor == "dask" and labels is not None:
        problem = "--labels needs the rows in memory: not with --executor dask"
    if problem is not None:
        _usage_error(problem)


def _usage_error(problem: str) -> NoReturn:
    console(stderr=True).print(f"[red]error:[/] {escape(problem)}")
    raise typer.Exit(EXIT_USAGE)


def _partitioned(root: Path, current: str) -> bool:
    """A folder or a glob of files (checked partition by partition), not one file."""
    from conveyor.data.partitions import is_multi_file

    if is_multi_file(current) or current.endswith("/"):
        return True
    return "://" not in current and (root / current).is_dir()


def _check_partitions(
    proj: Project,
    model: str | None,
    current: str,
    mon: MonitoringConfig,
    executor: str,
    address: str | None,
    no_alerts: bool,
) -> CheckResult:
    """Each file of ``current`` loaded, scored and sketched, locally one at a time or as
    Dask tasks; the merged sketch checked (conveyor.monitoring.sketches)."""
    from functools import partial

    from conveyor.monitoring.alerts import channels_from_config
    from conveyor.monitoring.partitioned import check_partitions
    from conveyor.serving.batch_dask import input_files
    from conveyor.watch import drift_settings

    files = input_files(proj, current)
    configured = proj.config.executor
    workers = 2
    if configured.type == "dask":
        address = address or configured.address
        workers = configured.workers or workers
    return check_partitions(
        proj.metadata,
        proj.artifacts,
        proj.model_ref(model),
        [partial(files.read, i) for i in range(len(files))],
        source=current,
        settings=drift_settings(proj),
        dask=executor == "dask",
        address=address,
        workers=workers,
        channels=[] if no_alerts else channels_from_config(mon.alerts),
        alert_cooldown_seconds=mon.alert_cooldown_minutes * 60,
    )


def watch(
    model: ModelOpt = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run one cycle and exit (cron, CI).")
    ] = False,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between cycles (monitoring.interval_seconds).")
    ] = None,
    project: ProjectOpt = Path("."),
    json_: JsonOpt = False,
) -> None:
    """Check, alert and retrain when a trigger fires (schedule, new data, persisting drift).
    Stops cleanly on SIGTERM or Ctrl-C after the cycle in progress."""
    import signal
    import threading

    from conveyor.project import Project
    from conveyor.watch import cycle
    from conveyor.watch import watch as loop

    out = console(stderr=json_)
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        out.print("[yellow]stopping after this cycle[/]")
        stop.set()

    with conveyor_errors(), Project.load(project) as proj:

        def show(result: CycleResult) -> None:
            if json_:
                print_json(_cycle_dict(result))
            else:
                _print_cycle(result)

        def announce(cause: str) -> None:
            if not json_:
                out.print(f"  [bold]retraining[/] because {escape(cause)} ...")

        if once:
            show(cycle(proj, model=model, on_retrain=announce))
            return
        wait = monitoring_settings(proj, source="conveyor watch", interval_seconds=interval)
        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            out.print(f"watching {proj.root} (Ctrl-C or SIGTERM stops after the cycle)")
            loop(proj, model=model, interval=wait.interval_seconds, stop=stop, on_cycle=show)
        except KeyboardInterrupt:
            out.print("interrupted")
        finally:
            signal.signal(signal.SIGTERM, previous)


def monitoring_settings(
    proj: Project, *, source: str = "conveyor monitor", **flags: Any
) -> MonitoringConfig:
    """``monitoring:`` of conveyor.yaml, overridden by the flags given (None: not given).

    Raises:
        ConfigError: a flag value out of the bounds conveyor.yaml would have.
    """
    from conveyor.config import with_overrides

    given = {k: v for k, v in flags.items() if v is not None}
    return with_overrides(proj.config.monitoring, given, source=source)


def _table(proj: object, path: str) -> object:
    from conveyor.config import SourceConfig
    from conveyor.data import sources

    kind = "parquet" if path.lower().endswith((".parquet", ".pq")) else "csv"
    return sources.load(SourceConfig(type=kind, path=path), proj.root)  # type: ignore[attr-defined]


def export_report(root: Path, result: CheckResult) -> Path:
    """Write a check's HTML report under .conveyor/reports/ (the artifact stays the record)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"monitor-{result.model.name}-{stamp}-{result.html_digest[:6]}.html"
    return write_report(root, name, result.html)


def _print(result: CheckResult, path: Path) -> None:
    from rich.table import Table

    from conveyor.monitoring.monitor import summary

    drift = result.drift
    table = Table(title=f"{result.ref}: {result.source}", title_justify="left")
    for col in ("column", "method", "statistic", "adj. p", "threshold", "verdict", "PSI", "notes"):
        table.add_column(col)
    for c in [*drift.columns, *drift.outputs]:
        notes = []
        if c.new_categories:
            notes.append("new: " + ", ".join(c.new_categories[:3]))
        if c.missing_changed:
            notes.append(f"missing {c.missing_reference:.0%}->{c.missing_current:.0%}")
        style = {"drift": "bold red", "ok": "green"}.get(c.verdict, "dim")
        table.add_row(
            escape(c.column),
            c.method,
            "-" if c.statistic is None else f"{c.statistic:.4g}",
            "" if c.adjusted_p_value is None else f"{c.adjusted_p_value:.3g}",
            f"{c.threshold:g}",
            f"[{style}]{c.verdict}[/]",
            "-" if c.psi is None else f"{c.psi:.3f}",
            escape("; ".join(notes)),
        )
    out = console()
    out.print(table)
    if result.performance:
        shown = ", ".join(
            f"{m.name} {m.current:.3f}"
            + (f" ({m.change:+.3f} vs training)" if m.change is not None else "")
            for m in result.performance.metrics
            if m.name in ("f1", "roc_auc", "accuracy", "rmse", "mae", "r2")
        )
        out.print(f"performance on {result.performance.rows} labelled rows: {shown}")
    outputs = result.report.get("prediction", {}).get("outputs", [])
    if outputs:
        verdicts = ", ".join(f"{o['output']} ({o['meaning']}): {o['verdict']}" for o in outputs)
        out.print(f"model outputs: {escape(verdicts)}")
    out.print(f"[bold]{escape(summary(result))}[/]")
    if result.alerts:
        out.print(f"alerts sent: {', '.join(result.alerts)}")
    out.print(f"report: {path}")


def _cycle_dict(result: CycleResult) -> dict[str, object]:
    return {
        "model": result.model,
        "check": None if result.check is None else result.check.drift.to_dict(),
        "check_error": result.check_error,
        "triggers": [t.reason for t in result.triggers],
        "cooldown_left": result.cooldown_left,
        "retrained": result.retrained,
        "run_id": result.run_id,
        "decision": None if result.decision is None else result.decision.to_json(),
    }


def _print_cycle(result: CycleResult) -> None:
    from conveyor.monitoring.monitor import summary

    out = console()
    stamp = time.strftime("%H:%M:%S")
    seen = summary(result.check) if result.check else f"no check: {result.check_error}"
    out.print(f"[{stamp}] {escape(result.model)}: {escape(seen)}")
    if result.triggers and result.cooldown_left is not None:
        out.print(
            f"  triggers ({escape(result.cause)}) wait: cooling down {result.cooldown_left:.0f} s"
        )
    if result.retrained:
        d = result.decision
        out.print(
            f"  retrained ({result.run_status}): {escape(result.model)}:{d.version if d else '?'} "
            f"{d.status if d else ''}: {escape(d.reason if d else '')}"
        )
