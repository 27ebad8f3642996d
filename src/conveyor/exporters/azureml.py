"""The line as an Azure ML pipeline job: YAML dumped by ``azure-ai-ml`` (``conveyor[azureml]``).

One command job per conveyor step, running the conveyor image with the stores in
``environment_variables``. Azure ML orders jobs by data only, so each job writes its summary to a
``summary`` folder output and takes the summaries of its upstream steps as ``after_<step>``
inputs. Azure ML has no stable condition construct: ``register`` just runs, and exits non-zero
on a gated model after recording it as rejected, which fails the pipeline job visibly.
"""

from __future__ import annotations

import logging
import shlex
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ExportError
from conveyor.exporters._line import Line, LineStep, Slots, parameters
from conveyor.exporters._line import required_env as _required_env

# The SDK warns at import (marshmallow deprecations) and logs a warning per experimental class
# it defines: nothing a conveyor user can act on.
logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from azure.ai.ml import Input, Output, command, load_job
    from azure.ai.ml.entities import Environment, PipelineJob, PipelineJobSettings


if TYPE_CHECKING:
    from collections.abc import Iterator

COMPUTE = "cpu-cluster"
"""The default compute cluster's name; choose another at submission:
``az ml job create --file OUT --set settings.default_compute=azureml:NAME``."""
RUN_KEY = '"${AZUREML_ROOT_RUN_ID:?conveyor: AZUREML_ROOT_RUN_ID is unset (not an Azure ML job)}"'
"""The pipeline job's run id, which Azure ML gives every child job; the shell expands it."""


@dataclass(frozen=True)
class Raw:
    """Shell text written as is (an Azure ML ``${{...}}`` expression, a variable)."""

    text: str


def render(line: Line) -> tuple[str, dict[str, str | int | None]]:
    """The pipeline job YAML and its inputs (name -> default).

    Raises:
        ExportError: the project's stores are local (Azure ML jobs could not share them).
    """
    job = pipeline_job(line)
    with quiet(), tempfile.TemporaryDirectory(prefix="conveyor-azureml-") as tmp:
        path = Path(tmp) / "pipeline.yaml"
        job.dump(path)
        return path.read_text(encoding="utf-8"), parameters(line)


def load(path: Path) -> PipelineJob:
    """A pipeline job YAML (as written by :func:`render`) loaded back by the SDK."""
    with quiet():
        job = load_job(path)
    if not isinstance(job, PipelineJob):
        raise ExportError(f"{path}: a {type(job).__name__}, not an Azure ML pipeline job")
    return job


def validate(job: PipelineJob) -> Any:
    """The SDK's offline validation of ``job`` (private API: ``_validate``, pinned range)."""
    with quiet():
        return job._validate()


@contextmanager
def quiet() -> Iterator[None]:
    """Silence the SDK's warnings (deprecations of its dependencies, experimental classes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def pipeline_job(line: Line) -> PipelineJob:
    """The PipelineJob of ``line``: one command job per step, named after it."""
    env = _required_env(line, "azureml")
    with quiet():
        return _pipeline_job(line, env)


def _pipeline_job(line: Line, env: dict[str, str]) -> PipelineJob:
    environment = Environment(image=line.image)
    inputs = parameters(line)
    jobs: dict[str, Any] = {}
    for step in line.steps:
        node = _command(line, step, environment, env)
        bindings = {name: f"${{{{parent.inputs.{name}}}}}" for name in inputs}
        bindings.update(
            {f"after_{u}": f"${{{{parent.jobs.{u}.outputs.summary}}}}" for u in step.upstream}
        )
        jobs[step.name] = node(**bindings)
    job = PipelineJob(
        display_name=line.name,
        description=f"conveyor line {line.pipeline} of project {line.project}",
        experiment_name=line.name,
        inputs={k: v for k, v in inputs.items() if v is not None},
        jobs=jobs,
        settings=PipelineJobSettings(default_compute=COMPUTE),
    )
    return job


def _command(line: Line, step: LineStep, environment: Environment, env: dict[str, str]) -> Any:
    """The command job running ``step`` (not deterministic: Azure ML must never reuse an
    earlier pipeline's output for it, the run id differs)."""
    inputs: dict[str, Input] = {}
    if line.data_uri is not None:
        inputs["data_uri"] = Input(type="string")
    if line.seed is not None:
        inputs["seed"] = Input(type="integer")
    inputs.update({f"after_{u}": Input(type="uri_folder") for u in step.upstream})
    argv = line.command(
        step,
        Slots[Raw](
            run_key=Raw(RUN_KEY),
            assign=lambda prefix, value: Raw(f'"{prefix}{value.text}"'),
            data_uri=Raw("${{inputs.data_uri}}") if line.data_uri is not None else None,
            seed=Raw("${{inputs.seed}}") if line.seed is not None else None,
            summary=Raw("${{outputs.summary}}/summary.json"),
            gate_passed=Raw("${{outputs.summary}}/gate_passed"),
        ),
    )
    return command(
        display_name=step.name,
        description=f"conveyor run {line.pipeline} --step {step.name}",
        command=" ".join(a.text if isinstance(a, Raw) else shlex.quote(a) for a in argv),
        environment=environment,
        environment_variables=env,
        inputs=inputs,
        outputs={"summary": Output(type="uri_folder")},
        is_deterministic=False,
    )
