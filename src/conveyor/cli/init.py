"""``conveyor init``: scaffold a project folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli._output import EXIT_FAILURE, EXIT_USAGE, console, conveyor_errors

if TYPE_CHECKING:
    from conveyor.config import SourceConfig

EXAMPLES = ("visa",)
# Deployment scaffolding: template in conveyor/cli/templates/ -> file in the project folder.
DEPLOY_FILES = {
    "Dockerfile.tmpl": "Dockerfile",
    "dockerignore.tmpl": ".dockerignore",
    "workflow.yml.tmpl": ".github/workflows/conveyor.yml",
}
_PLACEHOLDER = re.compile(r"<<([A-Z_]+)>>")

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
registry: {{model: {model}}}
"""


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")] = Path("."),
    example: Annotated[
        str | None, typer.Option(help=f"Start from an example: {', '.join(EXAMPLES)}.")
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Start from your table: a CSV or Parquet file (path or s3://, gs://, az:// "
            "URI), a database URL (with --table or --query) or a mongodb:// URI (with "
            "--database and --collection).",
        ),
    ] = None,
    target: Annotated[str | None, typer.Option(help="With --from: the column to predict.")] = None,
    task: Annotated[
        str | None,
        typer.Option(help="With --from: classification or regression (default: inferred)."),
    ] = None,
    positive: Annotated[
        str | None,
        typer.Option(help="With --from: the positive class of a binary target (as text)."),
    ] = None,
    id_: Annotated[
        list[str] | None,
        typer.Option("--id", help="With --from: an identifier column to leave out (repeatable)."),
    ] = None,
    table: Annotated[str | None, typer.Option(help="With a database --from: the table.")] = None,
    query: Annotated[str | None, typer.Option(help="With a database --from: a query.")] = None,
    database: Annotated[str | None, typer.Option(help="With mongodb --from: database.")] = None,
    collection: Annotated[str | None, typer.Option(help="With mongodb --from: collection.")] = None,
    force: Annotated[
        bool,
        typer.Option(help="Overwrite existing files (conveyor.yaml, Dockerfile, workflow, ...)."),
    ] = False,
) -> None:
    """Create conveyor.yaml (with --example visa, its schema and data; with --from, a project
    fitted to your table), a Dockerfile and CI."""
    out, err = console(), console(stderr=True)
    if example is not None and example not in EXAMPLES:
        err.print(f"[red]error:[/] unknown example {example!r}; choose from {', '.join(EXAMPLES)}")
        raise typer.Exit(EXIT_USAGE)
    if from_ is not None and (example is not None or target is None):
        why = "--from and --example exclude each other" if example else "--from needs --target"
        err.print(f"[red]error:[/] {why}")
        raise typer.Exit(EXIT_USAGE)
    if from_ is None and (target or task or positive or id_):
        err.print("[red]error:[/] --target, --task, --positive and --id go with --from FILE")
        raise typer.Exit(EXIT_USAGE)
    path = directory / "conveyor.yaml"
    if path.exists() and not force:
        err.print(f"[red]error:[/] {path} already exists (use --force to overwrite)")
        raise typer.Exit(EXIT_FAILURE)
    with conveyor_errors():
        if from_ is not None:
            assert target is not None
            source = source_for(
                from_,
                directory,
                table=table,
                query=query,
                database=database,
                collection=collection,
            )
            written = from_table(
                directory, source, target=target, task=task, positive=positive, ids=id_ or []
            )
            written += scaffold_extras(directory, force=force)
        else:
            written = scaffold(directory, example=example, force=force)
    for path in written:
        out.print(f"  created {path}")
    for path in deployment_paths(directory):
        if path not in written:
            out.print(f"  kept existing {path} (--force overwrites it)")
    out.print(f"Project ready in {directory.resolve()}. Next: [bold]conveyor run -p {directory}[/]")


def source_for(
    uri: str,
    directory: Path,
    *,
    table: str | None = None,
    query: str | None = None,
    database: str | None = None,
    collection: str | None = None,
) -> SourceConfig:
    """The ``data.source`` for ``--from``: a file is kept where it is (relative to the project
    folder when inside it), a database URL needs a table or a query, MongoDB a collection."""
    from conveyor.config import SourceConfig
    from conveyor.errors import ConfigError

    scheme = uri.partition("://")[0].lower() if "://" in uri else ""
    if scheme.startswith("mongodb"):
        if not (database and collection):
            raise ConfigError("--from mongodb://...: needs --database and --collection")
        return SourceConfig(type="mongodb", uri=uri, database=database, collection=collection)
    if scheme and scheme not in ("s3", "gs", "gcs", "az", "abfs", "abfss", "http", "https", "file"):
        if not (table or query):
            raise ConfigError(f"--from {scheme}://...: a database needs --table or --query")
        return SourceConfig(type="sql", url=uri, table=table, query=query)
    name = uri.lower().removesuffix(".gz").removesuffix(".zip")
    kind = "parquet" if name.endswith((".parquet", ".pq")) or uri.endswith("/") else "csv"
    if scheme:
        return SourceConfig(type=kind, path=uri)
    file = Path(uri).expanduser().resolve()
    if not file.exists():
        raise ConfigError(f"--from: {uri}: file not found")
    try:
        path = str(file.relative_to(directory.resolve()))
    except ValueError:
        path = str(file)
    return SourceConfig(type=kind, path=path)


def from_table(
    directory: Path,
    source: SourceConfig,
    *,
    target: str,
    task: str | None,
    positive: str | None,
    ids: list[str],
) -> list[Path]:
    """Plan and write the project for a table; print what was decided, and why."""
    from rich.markup import escape

    from conveyor.scaffold import write_project

    plan, written = write_project(
        directory, source, target=target, task=task, positive=positive, ids=ids
    )
    out = console()
    out.print(
        f"{plan.rows:,} rows x {plan.columns} columns; target {escape(plan.target)!r}: "
        f"{plan.kind}, primary metric {plan.primary}; {plan.budget.reason}"
    )
    for role in plan.roles:
        mark = "left out" if role.dropped else role.kind
        out.print(f"  {escape(role.name):<28} {mark:<10} {escape(role.reason)}")
    return written


def scaffold_extras(directory: Path, *, force: bool = False) -> list[Path]:
    """The .gitignore and deployment files every project gets."""
    written: list[Path] = []
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text(".conveyor/\n", encoding="utf-8")
        written.append(ignore)
    return written + write_deployment(directory, force=force)


def scaffold(directory: Path, *, example: str | None, force: bool = False) -> list[Path]:
    """Write the project files; returns the paths written.

    The deployment files (Dockerfile, .dockerignore, GitHub Actions workflow) are written only
    where missing, unless ``force``; an existing .gitignore is always kept.
    """
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
        name = directory.resolve().name or "project"
        # JSON strings are YAML strings: a folder named 2024 or true stays a name.
        text = _MINIMAL.format(name=json.dumps(name), model=json.dumps(f"{name}-model"))
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written + scaffold_extras(directory, force=force)


def deployment_paths(directory: Path) -> list[Path]:
    """Where the deployment files of a project folder go."""
    return [directory / target for target in DEPLOY_FILES.values()]


def write_deployment(directory: Path, *, force: bool = False) -> list[Path]:
    """Write the Dockerfile, .dockerignore and workflow for ``directory``'s conveyor.yaml.

    Files that exist are kept unless ``force``. Returns the paths written.
    """
    values = _deployment_values(directory / "conveyor.yaml")
    written: list[Path] = []
    for template, target in DEPLOY_FILES.items():
        path = directory / target
        if path.exists() and not force:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_template(template, values), encoding="utf-8")
        written.append(path)
    return written


def render_template(name: str, values: dict[str, str]) -> str:
    """Fill the ``<<KEY>>`` placeholders of a template in conveyor/cli/templates/.

    ``<<KEY>>`` rather than ``{key}`` or ``${key}``: workflows are full of ``${{ ... }}``.

    Raises:
        KeyError: the template has a placeholder that ``values`` does not fill.
    """
    from importlib import resources

    text = resources.files("conveyor.cli").joinpath("templates", name).read_text(encoding="utf-8")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def _deployment_values(config_path: Path) -> dict[str, str]:
    """Placeholder values from a conveyor.yaml: project name, image name, served model."""
    from conveyor.config import load_config

    config = load_config(config_path)
    registry = config.registry
    model = registry.model if registry is not None else f"{config.project}-model"
    alias = registry.promote.alias if registry is not None else "production"
    return {
        "PROJECT": _slug(config.project),
        "IMAGE": _image(config.project),
        "MODEL_REF": f"{model}@{alias}",
    }


def image_name(config_path: Path) -> str:
    """The image name of a project, from its conveyor.yaml: ``PROJECT-server``."""
    from conveyor.config import load_config

    return _image(load_config(config_path).project)


def _image(project: str) -> str:
    return f"{_slug(project)}-server"


def _slug(name: str) -> str:
    """A lower-case name safe in an image name and a comment: ``My Project`` -> ``my-project``."""
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._") or "project"
