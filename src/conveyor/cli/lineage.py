"""``conveyor lineage`` and ``conveyor audit``: where a model came from, and who did what."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from conveyor.cli._options import JsonOpt, ProjectOpt  # noqa: TC001 - Typer reads them at runtime
from conveyor.cli._output import EXIT_USAGE, console, conveyor_errors, fmt_time, print_json

if TYPE_CHECKING:
    from conveyor.registry.lineage import DatasetLineage, ModelLineage


def lineage(
    ref: Annotated[str | None, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset", help="Dataset fingerprint (or prefix): which models used this data."
        ),
    ] = None,
    project: ProjectOpt = Path("."),
    json_: JsonOpt = False,
) -> None:
    """Dataset -> run -> candidates -> model -> aliases, or --dataset FP for the other way."""
    from conveyor.project import Project
    from conveyor.registry import lineage as queries

    if (ref is None) == (dataset is None):
        console(stderr=True).print("[red]error:[/] give a model (NAME:VER) or --dataset FP")
        raise typer.Exit(EXIT_USAGE)
    with conveyor_errors(), Project.load(project) as proj:
        if ref:
            found = queries.model_lineage(proj.metadata, proj.artifacts, ref)
        else:
            by_data = queries.dataset_lineage(proj.metadata, dataset or "")
    if json_:
        print_json(found.to_json() if ref else by_data.to_json())
        return
    _print_model(found) if ref else _print_dataset(by_data)


def audit(
    project: ProjectOpt = Path("."),
    since: Annotated[
        str | None, typer.Option(help="Only events at or after this ISO date/time.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only events of this model.")] = None,
    json_: JsonOpt = False,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """The append-only audit log: register, approve, promote, rollback, reject, archive."""
    import datetime as dt

    from conveyor.project import Project

    start = None
    if since is not None:
        try:
            start = dt.datetime.fromisoformat(since).timestamp()
        except ValueError:
            console(stderr=True).print(f"[red]error:[/] --since {since!r}: use YYYY-MM-DD[THH:MM]")
            raise typer.Exit(EXIT_USAGE) from None
    with conveyor_errors(), Project.load(project) as proj:
        events = proj.metadata.list_events(since=start, entity=model)
    rows = [
        {
            "id": e.id,
            "at": dt.datetime.fromtimestamp(e.at, dt.UTC).isoformat(),
            "actor": e.actor,
            "action": e.action,
            "entity": e.entity,
            "reason": e.reason,
            "details": e.details,
        }
        for e in events
    ]
    if json_:
        print_json(rows)
    elif csv:
        import csv as csvlib
        import json
        import sys

        writer = csvlib.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["id"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "details": json.dumps(row["details"], sort_keys=True)})
    else:
        out = console()
        for e in events:
            out.print(
                f"{fmt_time(e.at)}  {e.actor:<12} {e.action:<9} {e.entity:<24} "
                f"{escape(e.reason or '')}",
                soft_wrap=True,
            )
        if not events:
            out.print("no events yet")


def _print_model(data: ModelLineage) -> None:
    out = console()
    m, d, r = data.model, data.dataset, data.run
    if d:
        out.print(
            f"[bold]dataset[/] {d.fingerprint[:16]}  {escape(d.source)}  "
            f"{d.n_rows} rows x {d.n_columns} cols  (first seen {fmt_time(d.created_at)})"
        )
    if r:
        out.print(
            f"  -> [bold]run[/] {r.id[:8]} {r.status} at {fmt_time(r.started_at)}"
            f"  commit {r.git_commit or '-'}  config {(r.config_hash or '-')[:12]}"
        )
    for c in data.candidates:
        trials = data.trials.get(c.candidate)
        mark = "*" if c.chosen else " "
        out.print(
            f"     {mark} candidate {c.candidate:<10} "
            + "  ".join(
                f"{k}={v:.3f}" for k, v in c.metrics.items() if k in ("f1", "roc_auc", "rmse")
            )
            + (f"  ({trials.trials} trials)" if trials else "")
        )
    for g in data.gates.results if data.gates else []:
        out.print(f"     gate {g.metric} {g.value:.4g} {g.rule}: {'pass' if g.passed else 'FAIL'}")
    out.print(f"  -> [bold]model[/] {m.name}:{m.version} {m.status}: {escape(m.reason or '')}")
    for h in data.alias_history:
        before = h["previous_version"] or "-"
        out.print(
            f"     {fmt_time(h['at'])} {h['action']} @{h['alias']} v{before} -> "
            f"v{h['version']} by {h['actor']}"
        )
    out.print(f"  -> served as {', '.join(data.served_as) or 'nothing (no alias points here)'}")


def _print_dataset(data: DatasetLineage) -> None:
    out = console()
    d = data.dataset
    out.print(f"[bold]dataset[/] {d.fingerprint}  {escape(d.source)}  {d.n_rows} rows")
    for m in data.models:
        out.print(
            f"  -> {m.model} {m.status} (run {(m.run_id or '-')[:8]})"
            + (f"  @{', @'.join(m.aliases)}" if m.aliases else "")
        )
    if not data.models:
        out.print("  -> no model version was trained on it")


def reproduce(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    project: ProjectOpt = Path("."),
    keep: Annotated[bool, typer.Option("--keep", help="Keep the scratch project.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Re-run the recorded line on the recorded data and config; exit 1 unless it matches."""
    import shutil

    from conveyor.cli._output import EXIT_FAILURE
    from conveyor.cli._progress import LiveProgress
    from conveyor.project import Project
    from conveyor.reproduce import reproduce as run_reproduction

    err = console(stderr=True)
    with conveyor_errors(), Project.load(project) as proj:
        outcome = run_reproduction(proj, ref, hooks=LiveProgress(err))
    if not keep:
        shutil.rmtree(outcome.scratch, ignore_errors=True)
    if json_:
        print_json(outcome.to_dict())
    verdict = "[green]identical[/]" if outcome.digest_match else "[red]different[/]"
    err.print(
        f"{outcome.model}: model artifact {verdict} "
        f"({outcome.original_digest[:12]} vs {(outcome.reproduced_digest or '-')[:12]}), "
        f"metrics {'match' if outcome.metrics_match else 'differ'}"
    )
    for note in outcome.notes:
        err.print(f"  note: {escape(note)}")
    if keep:
        err.print(f"  scratch project kept in {outcome.scratch}")
    if not (outcome.digest_match and outcome.metrics_match):
        raise typer.Exit(EXIT_FAILURE)
