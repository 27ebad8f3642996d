"""A conveyor line as a cloud pipeline: SageMaker Pipelines, Vertex AI (KFP) or Azure ML.

Every exporter writes one platform step per conveyor step (same names, same DAG), each running
the conveyor image with ``conveyor run PIPELINE --run-id KEY --step NAME``; the shared stores
(PostgreSQL + object storage) carry the data between steps. The platform SDKs are optional
extras, imported only when their target is asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import ExportError, MissingSdkError
from conveyor.exporters._line import Line, LineStep, Slots, describe, shared_stores

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

    from conveyor.project import Project

__all__ = [
    "TARGETS",
    "ExportError",
    "Exported",
    "Line",
    "LineStep",
    "MissingSdkError",
    "Slots",
    "describe",
    "export_pipeline",
    "require_sdk",
    "shared_stores",
]


@dataclass(frozen=True)
class Target:
    """An export target: its module here, the SDK module it needs and the extra installing it."""

    module: str
    sdk: str
    extra: str


TARGETS: dict[str, Target] = {
    "sagemaker": Target("conveyor.exporters.sagemaker", "sagemaker", "sagemaker"),
    "vertex": Target("conveyor.exporters.vertex", "kfp", "vertex"),
    "azureml": Target("conveyor.exporters.azureml", "azure.ai.ml", "azureml"),
}


@dataclass(frozen=True)
class Exported:
    """What ``export_pipeline`` wrote, for the caller to tell the user what comes next.

    Attributes:
        line: the line as exported.
        out: the file written.
        target: the platform.
        parameters: the platform pipeline's parameters and their defaults (None: required).
    """

    line: Line
    out: Path
    target: str
    parameters: dict[str, str | int | None]


def require_sdk(target: str) -> ModuleType:
    """The exporter module for ``target``, after checking its SDK imports.

    Raises:
        ExportError: ``target`` is not one of :data:`TARGETS`.
        MissingSdkError: the SDK is not installed (says which extra installs it).
    """
    spec = TARGETS.get(target)
    if spec is None:
        raise ExportError(f"unknown target {target!r}; choose one of: {', '.join(TARGETS)}")
    try:
        return importlib.import_module(spec.module)
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] == "conveyor":
            raise  # our own bug, not a missing SDK
        # the SDK, or one of its dependencies, cannot be imported
        raise MissingSdkError(
            f"--target {target} needs the {spec.sdk} SDK, which is not installed ({exc}): "
            f"pip install 'conveyor[{spec.extra}]'"
        ) from exc


def export_pipeline(
    project: Project, target: str, out: Path, *, image: str, pipeline: str = "train"
) -> Exported:
    """Write ``pipeline`` of ``project`` as ``target``'s native pipeline definition to ``out``.

    Args:
        project: the project whose line is exported.
        target: ``sagemaker`` (definition JSON), ``vertex`` (KFP IR YAML) or ``azureml``
            (pipeline job YAML).
        out: the file to write (its folder is created).
        image: the conveyor image every step runs (pushed where the platform can pull it).
        pipeline: the pipeline to export.

    Returns:
        What was written, with the pipeline's parameters.

    Raises:
        ExportError: unknown target, or stores the target's steps cannot share.
        MissingSdkError: the target's SDK is not installed.
        ConfigError: no such pipeline.
    """
    module = require_sdk(target)
    line = describe(project, pipeline, image=image)
    text, parameters = module.render(line)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return Exported(line=line, out=out, target=target, parameters=parameters)
