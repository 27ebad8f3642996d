"""``conveyor data validate|infer|versions``: the data contract outside a run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from conveyor.cli._options import JsonOpt, ProjectOpt  # noqa: TC001 - Typer reads them at runtime
from conveyor.cli._output import (
    EXIT_FAILURE,
    console,
    conveyor_errors,
    fmt_time,
    print_json,
    styled,
)

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    help="Validate data against its schema, infer a schema, list versions.", no_args_is_help=True
)

SEVERITY_COLOR = {"error": "bold red", "warn": "yellow", "drop": "magenta", "fix": "cyan"}


@app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file to check.")],
    schema: Annotated[
        Path | None, typer.Option(help="schema.yaml (default: data.schema of the project).")
    ] = None,
    project: ProjectOpt = Path("."),
    json_: JsonOpt = False,
) -> None:
    """Check FILE against the schema: exit 1 when an error-level check fails."""
    from conveyor.config import SourceConfig, load_config
    from conveyor.data import sources
    from conveyor.data.schema import load_schema
    from conveyor.data.validation import validate as run_validation

    with conveyor_errors():
        options: dict[str, Any] = {}
        if schema is None or (project / "conveyor.yaml").exists():
            config = load_config(project) if (project / "conveyor.yaml").exists() else None
            if schema is None:
                if config is None or config.data is None or config.data.schema_file is None:
                    console(stderr=True).print(
                        "[red]error:[/] no schema: pass --schema or run inside a project "
                        "whose conveyor.yaml sets data.schema"
                    )
                    raise typer.Exit(EXIT_FAILURE)
                schema = project / config.data.schema_file
            if config is not None and config.data is not None:
                options = dict(config.data.source.options)
        kind = "parquet" if file.suffix.lower() in (".parquet", ".pq") else "csv"
        source = SourceConfig(type=kind, path=str(file.resolve()), options=options)
        frame = sources.load(source, Path.cwd())
        _, report = run_validation(frame, load_schema(schema), source=str(file))
    if json_:
        print_json(report.to_dict())
    else:
        render_report(console(), report.to_dict())
    if not report.passed:
        raise typer.Exit(EXIT_FAILURE)


@app.command("infer")
def infer(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet sample to learn from.")],
    max_categories: Annotated[
        int,
        typer.Option(
            min=1, help="Text columns with at most this many distinct values become categories."
        ),
    ] = 20,
) -> None:
    """Print a starting schema.yaml for FILE (review the ranges before trusting them)."""
    import yaml

    from conveyor.config import SourceConfig
    from conveyor.data import sources
    from conveyor.data.schema import infer_schema

    with conveyor_errors():
        kind = "parquet" if file.suffix.lower() in (".parquet", ".pq") else "csv"
        frame = sources.load(SourceConfig(type=kind, path=str(file.resolve())), Path.cwd())
        spec = infer_schema(frame, max_categories=max_categories)
    typer.echo(
        f"# inferred by `conveyor data infer {file.name}` from {len(frame)} rows: "
        "review ranges, nullability and severities"
    )
    typer.echo(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100), nl=False)


@app.command("versions")
def versions(project: ProjectOpt = Path("."), json_: JsonOpt = False) -> None:
    """Dataset versions seen by this project, newest first, with the models trained on them."""
    from rich.table import Table

    from conveyor.project import Project

    with conveyor_errors(), Project.load(project) as proj:
        datasets = proj.metadata.list_datasets()
    if json_:
        print_json(
            [
                {
                    "fingerprint": d.fingerprint,
                    "source": d.source,
                    "rows": d.n_rows,
                    "columns": d.n_columns,
                    "schema_hash": d.schema_hash,
                    "digest": d.digest,
                    "run_id": d.run_id,
                    "created_at": d.created_at,
                    "models": list(d.models),
                }
                for d in datasets
            ]
        )
        return
    table = Table(title=f"dataset versions in {proj.root}", title_justify="left")
    for col in ("fingerprint", "source", "rows", "cols", "first seen", "run", "models"):
        table.add_column(col)
    for d in datasets:
        table.add_row(
            d.fingerprint[:12],
            escape(d.source),
            str(d.n_rows),
            str(d.n_columns),
            fmt_time(d.created_at),
            (d.run_id or "-")[:8],
            ", ".join(d.models) or "-",
        )
    console().print(table if datasets else "no dataset versions yet: try `conveyor run`")


def render_report(out: Console, report: dict[str, Any]) -> None:
    """A validation report as a table: each failing check with severity, count and examples."""
    from rich.table import Table

    verdict = styled("succeeded") if report["passed"] else styled("failed")
    out.print(
        f"validation of {escape(report['source'])}: {verdict}  rows in {report['rows_in']}, "
        f"out {report['rows_out']} (dropped {report['dropped']}, fixed {report['fixed']}, "
        f"warnings {report['warnings']})"
    )
    if not report["failures"]:
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("severity", "column", "check", "rows", "first rows", "first values"):
        table.add_column(col, overflow="fold")
    for f in report["failures"]:
        table.add_row(
            f"[{SEVERITY_COLOR[f['severity']]}]{f['severity']}[/]",
            escape(f["column"] or "(table)"),
            escape(f["check"]),
            str(f["count"]),
            ", ".join(map(str, f["rows"])),
            escape(", ".join(map(repr, f["values"]))),
        )
    out.print(table)
