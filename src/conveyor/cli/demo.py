"""``conveyor demo``: the visa example end to end on the embedded store."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli._output import EXIT_FAILURE, console, conveyor_errors, fmt_seconds

if TYPE_CHECKING:
    from rich.console import Console


def demo(
    directory: Annotated[
        Path, typer.Argument(help="Project folder to create (kept to inspect).")
    ] = Path("demo"),
) -> None:
    """The visa example around the whole loop: scaffold, train, serve, monitor, detect drift,
    alert, retrain on fresh data, decide, hot swap, lineage, rollback."""
    import time

    from rich.markup import escape

    from conveyor.cli._demo_loop import run_loop
    from conveyor.cli._progress import LiveProgress
    from conveyor.cli.init import scaffold
    from conveyor.cli.run import export_report
    from conveyor.contracts import Registration
    from conveyor.project import Project

    out = console()
    with conveyor_errors():
        if not (directory / "conveyor.yaml").exists():
            out.rule("1. scaffold the visa project (seeded synthetic EasyVisa data)")
            for path in scaffold(directory, example="visa"):
                out.print(f"  created {path}")
        else:  # a demo already ran here and left drifted data: start from the same world
            from conveyor.examples.visa.generate import write_csv

            write_csv(directory / "data" / "visa.csv")
            out.print(f"  reusing {directory}; data/visa.csv reset to the example's initial data")
        # The demo retrains on every run, triggered by drift only (each run resets the data,
        # which the new-data trigger would count as new); a real project keeps its settings.
        demo_settings = [
            "monitoring.retrain.cooldown_minutes=0",
            "monitoring.retrain.on_new_data=false",
        ]
        with Project.load(directory, overrides=demo_settings) as proj:
            out.rule("2. train: ingest -> split -> train candidates -> evaluate -> register")
            first = proj.run(hooks=LiveProgress(out))
            if not first.ok:
                out.print(f"[red]the train line failed:[/] {escape(str(first.failures))}")
                raise typer.Exit(EXIT_FAILURE)
            out.rule("3. run again: nothing changed, so every step comes from the cache")
            started = time.perf_counter()
            again = proj.run(hooks=LiveProgress(out))
            took = time.perf_counter() - started
            cached = sum(1 for s in again.steps.values() if str(s) == "cached")
            out.print(f"  {cached}/{len(again.steps)} steps cached, run took {fmt_seconds(took)}")
            reg = Registration.of(proj.load_artifact(first.outputs["registration"].digest))
            loop = run_loop(proj, reg.name, out)
            record = proj.metadata.get_run(first.run_id)
            html = proj.load_artifact(first.outputs["report_html"].digest)
            report_path = export_report(proj.root, first.run_id, html)
    out.rule("summary")
    metrics = {
        k.removeprefix("test."): v for k, v in record.metrics.items() if k.startswith("test.")
    }
    out.print(
        f"  model {reg.name}:{reg.version}  "
        + "  ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items()))
    )
    out.print(
        f"  {reg.name}@{reg.alias or '-'}: v{reg.version} ({reg.status}: {escape(reg.reason)})"
    )
    out.print(f"  served by: {', '.join(dict.fromkeys(loop.served))}")
    out.print(f"  monitoring: normal traffic: {escape(loop.calm)}")
    out.print(
        f"              drifted traffic: {escape(loop.drift)}; "
        f"alerts: {', '.join(loop.alerts) or '-'}"
    )
    d = loop.decision
    out.print(
        f"  retrained because {escape(loop.cause or '-')}: v{d.version if d else '?'} "
        f"{d.status if d else '-'} ({escape(d.reason if d else '-')})"
    )
    out.print(f"  rollback: {escape(loop.rollback)}")
    out.print(f"  training report: {report_path}")
    out.print(f"  drift reports: {', '.join(loop.reports)}")
    out.print(f"  project folder: {directory.resolve()}")
    out.print(
        f"  next: conveyor runs list -p {directory}   conveyor runs show {first.run_id[:8]} "
        f"-p {directory}"
    )
    _print_ui_hint(out, directory)


def _print_ui_hint(out: Console, directory: Path) -> None:
    """End with the one command that shows all of the above in a browser (and how to sign in:
    the UI asks for an API key with the read scope; admin lets it promote)."""
    from rich.markup import escape

    folder = escape(shlex.quote(str(directory)))
    out.rule("look at it in a browser")
    out.print(
        f"  conveyor keys create --name me --scope read --scope admin -p {folder}"
        "   (prints the key to sign in with)"
    )
    out.print(f"  conveyor ui -p {folder}   then open http://127.0.0.1:8765/")
