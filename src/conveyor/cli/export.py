"""``conveyor export model``: a registered version as a self-contained, verifiable bundle;
``conveyor export pipeline``: the line as a SageMaker, Vertex AI or Azure ML pipeline."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from conveyor.cli._options import JsonOpt, ProjectOpt  # noqa: TC001 - Typer reads them at runtime
from conveyor.cli._output import console, conveyor_errors, print_json

app = typer.Typer(
    help="Export models as deployable bundles, lines as cloud pipelines.", no_args_is_help=True
)


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


class Target(StrEnum):
    """The platforms ``export pipeline`` writes for."""

    sagemaker = "sagemaker"
    vertex = "vertex"
    azureml = "azureml"


NEXT_STEPS = {
    Target.sagemaker: (
        "push {image} to ECR (pass its ECR URI as --image), then:\n"
        "  aws sagemaker create-pipeline --pipeline-name {name} "
        "--pipeline-definition file://{out} --role-arn ROLE_ARN\n"
        "  aws sagemaker start-pipeline-execution --pipeline-name {name} "
        "--pipeline-parameters Name=RoleArn,Value=ROLE_ARN"
    ),
    Target.vertex: (
        "push {image} to Artifact Registry (pass its URI as --image), then submit {out} with "
        "google-cloud-aiplatform:\n"
        "  aiplatform.PipelineJob(display_name='{name}', template_path='{out}', "
        "pipeline_root='gs://BUCKET/pipeline-root').submit(service_account=SA_EMAIL)"
    ),
    Target.azureml: (
        "push {image} to your Azure Container Registry (pass its URI as --image), then:\n"
        "  az ml job create --file {out} --resource-group RG --workspace-name WS "
        "--set settings.default_compute=azureml:CLUSTER"
    ),
}
"""What to run after exporting, per target (docs/cloud-pipelines.md has the whole story)."""


@app.command("pipeline")
def pipeline(
    out: Annotated[Path, typer.Argument(help="The definition file to write (JSON or YAML).")],
    target: Annotated[
        Target, typer.Option("--target", "-t", help="The pipeline service to write for.")
    ],
    image: Annotated[
        str | None,
        typer.Option(help="The conveyor image every step runs (default: PROJECT-server:latest)."),
    ] = None,
    pipeline_: Annotated[
        str, typer.Option("--pipeline", help="The pipeline to export: train, or one of pipelines:.")
    ] = "train",
    project: ProjectOpt = Path("."),
    json_: JsonOpt = False,
) -> None:
    """Write the line as SageMaker Pipelines JSON, Vertex AI (KFP) YAML or an Azure ML pipeline
    job: one platform step per conveyor step, each running `conveyor run --step` in the image
    against the shared stores (CONVEYOR_METADATA_URL / CONVEYOR_ARTIFACTS_URI)."""
    from conveyor._secrets import mask_uri
    from conveyor.cli.image import default_tag
    from conveyor.exporters import export_pipeline
    from conveyor.project import Project

    chosen = image or default_tag(project)
    with conveyor_errors(), Project.load(project) as proj:
        done = export_pipeline(proj, target.value, out, image=chosen, pipeline=pipeline_)
    shown = {k: mask_uri(v) if isinstance(v, str) else v for k, v in done.parameters.items()}
    if json_:
        print_json(
            {
                "target": target.value,
                "out": str(out),
                "pipeline": done.line.name,
                "image": chosen,
                "steps": [s.name for s in done.line.steps],
                "parameters": shown,
            }
        )
        return
    con = console()
    con.print(
        f"wrote {escape(str(out))}: {target.value} pipeline [bold]{escape(done.line.name)}[/], "
        f"{len(done.line.steps)} steps running {escape(chosen)}",
        soft_wrap=True,
    )
    if shown:
        con.print(
            "parameters: "
            + ", ".join(f"{k}={'(required)' if v is None else v}" for k, v in shown.items()),
            soft_wrap=True,
            markup=False,
        )
    data_uri = done.line.data_uri
    if data_uri is not None and "://" not in data_uri:
        con.print(
            f"note: the data parameter defaults to the local path {escape(data_uri)}, which the "
            "platform's containers cannot read: pass a bucket URI when starting the pipeline",
            soft_wrap=True,
        )
    if image is None:
        con.print(
            f"note: no --image given; {escape(chosen)} is the local name `conveyor build-image` "
            "uses: the platform can only pull an image pushed to its registry"
        )
    if any(mask_uri(v) != v for v in done.line.env.values()):
        console(stderr=True).print(
            f"[yellow]warning:[/] {escape(str(out))} holds the metadata store's password: keep "
            "it out of version control (docs/cloud-pipelines.md: secrets)"
        )
    con.print(
        "next: " + NEXT_STEPS[target].format(image=chosen, name=done.line.name, out=out),
        soft_wrap=True,
        markup=False,
    )
