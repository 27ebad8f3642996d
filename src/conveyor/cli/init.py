"""``conveyor init``: scaffold a project folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli._output import EXIT_FAILURE, EXIT_USAGE, console, conveyor_errors

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
    force: Annotated[
        bool,
        typer.Option(help="Overwrite existing files (conveyor.yaml, Dockerfile, workflow, ...)."),
    ] = False,
) -> None:
    """Create conveyor.yaml (with --example visa, its schema and data), a Dockerfile and CI."""
    out, err = console(), console(stderr=True)
    if example is not None and example not in EXAMPLES:
        err.print(f"[red]error:[/] unknown example {example!r}; choose from {', '.join(EXAMPLES)}")
        raise typer.Exit(EXIT_USAGE)
    target = directory / "conveyor.yaml"
    if target.exists() and not force:
        err.print(f"[red]error:[/] {target} already exists (use --force to overwrite)")
        raise typer.Exit(EXIT_FAILURE)
    with conveyor_errors():
        written = scaffold(directory, example=example, force=force)
    for path in written:
        out.print(f"  created {path}")
    for path in deployment_paths(directory):
        if path not in written:
            out.print(f"  kept existing {path} (--force overwrites it)")
    out.print(f"Project ready in {directory.resolve()}. Next: [bold]conveyor run -p {directory}[/]")


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
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text(".conveyor/\n", encoding="utf-8")
        written.append(ignore)
    written += write_deployment(directory, force=force)
    return written


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
    import yaml

    from conveyor.config import parse_config

    config = parse_config(yaml.safe_load(config_path.read_text(encoding="utf-8")))
    registry = config.registry
    model = registry.model if registry is not None else f"{config.project}-model"
    alias = registry.promote.alias if registry is not None else "production"
    return {
        "PROJECT": _slug(config.project),
        "IMAGE": f"{_slug(config.project)}-server",
        "MODEL_REF": json.dumps(f"{model}@{alias}"),
    }


def _slug(name: str) -> str:
    """A lower-case name safe in an image name and a comment: ``My Project`` -> ``my-project``."""
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._") or "project"
