"""``conveyor init``: scaffold a project folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli._output import EXIT_FAILURE, EXIT_USAGE, console, conveyor_errors

EXAMPLES = ("visa",)

_MINIMAL = """\
# conveyor project. Docs: README.md of conveyor.
project: {name}
store: {{metadata: "sqlite:///.conveyor/conveyor.db", artifacts: .conveyor/artifacts}}
data:
  source: {{type: csv, path: data/train.csv}}
  target: label
training:
  candidates:
    - name: logreg
      estimator: sklearn.linear_model.LogisticRegression
      params: {{max_iter: 1000}}
registry: {{model: {name}-model}}
"""


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")] = Path("."),
    example: Annotated[
        str | None, typer.Option(help=f"Start from an example: {', '.join(EXAMPLES)}.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing conveyor.yaml.")] = False,
) -> None:
    """Create conveyor.yaml (and, with --example visa, its schema and generated data)."""
    out, err = console(), console(stderr=True)
    if example is not None and example not in EXAMPLES:
        err.print(f"[red]error:[/] unknown example {example!r}; choose from {', '.join(EXAMPLES)}")
        raise typer.Exit(EXIT_USAGE)
    target = directory / "conveyor.yaml"
    if target.exists() and not force:
        err.print(f"[red]error:[/] {target} already exists (use --force to overwrite)")
        raise typer.Exit(EXIT_FAILURE)
    with conveyor_errors():
        written = scaffold(directory, example=example)
    for path in written:
        out.print(f"  created {path}")
    out.print(f"Project ready in {directory.resolve()}. Next: [bold]conveyor run -p {directory}[/]")


def scaffold(directory: Path, *, example: str | None) -> list[Path]:
    """Write the project files; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if example == "visa":
        from importlib import resources

        from conveyor.examples.visa.generate import write_csv

        pkg = resources.files("conveyor.examples.visa")
        for name in ("conveyor.yaml", "schema.yaml"):
            path = directory / name
            path.write_text(pkg.joinpath(name).read_text(encoding="utf-8"), encoding="utf-8")
            written.append(path)
        written.append(write_csv(directory / "data" / "visa.csv"))
    else:
        path = directory / "conveyor.yaml"
        path.write_text(
            _MINIMAL.format(name=directory.resolve().name or "project"), encoding="utf-8"
        )
        written.append(path)
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text(".conveyor/\n", encoding="utf-8")
        written.append(ignore)
    return written
