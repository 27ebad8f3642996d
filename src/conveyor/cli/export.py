"""``conveyor export model``: a registered version as a self-contained, verifiable bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from conveyor.cli._options import JsonOpt, ProjectOpt  # noqa: TC001 - Typer reads them at runtime
from conveyor.cli._output import console, conveyor_errors, print_json

app = typer.Typer(help="Export models as deployable bundles.", no_args_is_help=True)


@app.command("model")
def model(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS or NAME:VERSION.")],
    out: Annotated[Path, typer.Argument(help="The bundle folder to write (and OUT.tar.gz).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing bundle.")] = False,
    project: ProjectOpt = Path("."),
    json_: JsonOpt = False,
) -> None:
    """Write OUT/ (manifest.json, model.joblib, signature.json, reference_profile.json,
    lineage.json) and OUT.tar.gz (the same files at its root, as SageMaker's model.tar.gz)."""
    from conveyor.project import Project
    from conveyor.registry.bundle import archive_path, export_model

    with conveyor_errors(), Project.load(project) as proj:
        manifest = export_model(proj.metadata, proj.artifacts, ref, out, force=force)
    archive = archive_path(out)
    if json_:
        print_json(
            {
                "model": manifest.model.name,
                "version": manifest.model.version,
                "bundle": str(out),
                "archive": str(archive),
                "files": {k: v.model_dump() for k, v in manifest.files.items()},
            }
        )
        return
    m = manifest.model
    console().print(
        f"exported {m.name}:{m.version} -> {escape(str(out))}/ and {escape(str(archive))} "
        f"({len(manifest.files)} files, each verified by SHA-256 on load)"
    )
