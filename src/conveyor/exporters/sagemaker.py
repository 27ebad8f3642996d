"""The line as a SageMaker pipeline: the definition JSON built by the SageMaker Python SDK v2
(``conveyor[sagemaker]``).

One ProcessingStep per conveyor step (the conveyor image, entry point ``conveyor``), ordered with
DependsOn (the steps exchange data through the shared stores); each uploads its summary to
``<ArtifactsUri>/sagemaker/<execution id>/<step>/``. The gate is a ConditionStep reading the gate
step's summary (PropertyFile + JsonGet of ``gate.passed``): ``register`` on the if-branch,
``register_rejected`` (the same command, which records the rejected version and fails) on the
else-branch.
"""

# ruff: noqa: E402 - the SDK is imported after quietening it (below)
from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

# Before the first import: the SDK logs a v2 -> v3 migration notice per class otherwise.
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
# ... and says at INFO, on stderr, which SDK config files it did not find.
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)

from sagemaker.processing import ProcessingOutput, Processor
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionEquals
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.parameters import ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_definition_config import PipelineDefinitionConfig
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep

from conveyor.config import ARTIFACTS_URI_ENV, METADATA_URL_ENV
from conveyor.exporters._line import REGISTER_STEP, REJECTED_STEP, Line, Slots

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sagemaker.workflow.pipeline_context import PipelineSession

CONDITION_STEP = "gate_passed"
SUMMARY_DIR = "/opt/ml/processing/summary"
SUMMARY_FILE = "summary.json"
INSTANCE_TYPE = "ml.m5.large"
REGION = "us-east-1"
"""Only for building the definition offline (it does not hold a region); upsert/start use the
caller's session."""
OPT_OUT = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
"""SDK defaults config: no telemetry, and nothing read from the user's SDK config files."""


def render(line: Line) -> tuple[str, dict[str, str | int | None]]:
    """The pipeline definition JSON and its parameters (name -> default; None: required)."""
    built = pipeline(line, session(region=REGION))
    with quiet():
        return built.definition(), parameters(line)


def parameters(line: Line) -> dict[str, str | int | None]:
    """The pipeline's parameters: defaults from conveyor.yaml and the exporting environment."""
    found: dict[str, str | int | None] = {"RoleArn": None, "InstanceType": INSTANCE_TYPE}
    found["MetadataUrl"] = line.env.get(METADATA_URL_ENV)
    found["ArtifactsUri"] = line.env.get(ARTIFACTS_URI_ENV)
    if line.data_uri is not None:
        found["DataUri"] = line.data_uri
    if line.seed is not None:
        found["SplitSeed"] = line.seed
    return found


def session(*, region: str, endpoint_url: str | None = None, **credentials: str) -> Any:
    """A PipelineSession that opts out of telemetry and reads no SDK config file (give it to
    :func:`pipeline` to ``upsert()``/``start()`` the pipeline).

    Args:
        region: the AWS region.
        endpoint_url: the SageMaker API endpoint (a test server), or None for AWS's.
        credentials: ``aws_access_key_id``/``aws_secret_access_key`` for boto3 (default: its
            usual chain).
    """
    import boto3
    from sagemaker.workflow.pipeline_context import PipelineSession

    boto = boto3.Session(region_name=region, **credentials)
    client = boto.client("sagemaker", endpoint_url=endpoint_url) if endpoint_url else None
    with quiet():
        return PipelineSession(boto_session=boto, sagemaker_client=client, sagemaker_config=OPT_OUT)


def pipeline(line: Line, sagemaker_session: PipelineSession) -> Pipeline:
    """The SDK Pipeline of ``line`` (call ``definition()``, ``upsert()`` or ``start()`` on it,
    inside :func:`quiet` to silence the SDK's notices)."""
    with quiet():
        return _pipeline(line, sagemaker_session)


def _pipeline(line: Line, sagemaker_session: PipelineSession) -> Pipeline:
    params = _parameters(line)
    builder = _builder(sagemaker_session)
    steps: dict[str, Any] = {}
    gate_file = PropertyFile(name="GateSummary", output_name="summary", path=SUMMARY_FILE)

    def step(name: str, upstream: tuple[str, ...], *, gate: bool = False) -> ProcessingStep:
        argv = line.command(
            name,
            Slots[Any](
                run_key=ExecutionVariables.PIPELINE_EXECUTION_ID,
                assign=lambda prefix, value: Join(on="", values=[prefix, value]),
                data_uri=params.get("DataUri"),
                seed=params.get("SplitSeed"),
                summary=f"{SUMMARY_DIR}/{SUMMARY_FILE}",
                gate_passed=f"{SUMMARY_DIR}/gate_passed" if gate else None,
            ),
        )
        processor = Processor(
            role=params["RoleArn"],
            image_uri=line.image,
            instance_count=1,
            instance_type=params["InstanceType"],
            entrypoint=argv[:1],
            env={
                METADATA_URL_ENV: params["MetadataUrl"],
                ARTIFACTS_URI_ENV: params["ArtifactsUri"],
            },
            base_job_name=f"conveyor-{name}".replace("_", "-"),
            sagemaker_session=builder,
        )
        summary = ProcessingOutput(
            output_name="summary",
            source=SUMMARY_DIR,
            destination=Join(
                on="/",
                values=[
                    params["ArtifactsUri"],
                    "sagemaker",
                    ExecutionVariables.PIPELINE_EXECUTION_ID,
                    name,
                ],
            ),
        )
        return ProcessingStep(
            name,
            step_args=processor.run(arguments=argv[1:], outputs=[summary]),
            depends_on=list(upstream) or None,
            property_files=[gate_file] if gate else None,
        )

    for spec in line.steps:
        steps[spec.name] = step(spec.name, spec.upstream, gate=spec.gate)
    top = [steps[s.name] for s in line.steps if not s.gated]
    if line.gated:
        gate = next(s.name for s in line.steps if s.gate)
        register = line.step(REGISTER_STEP)
        passed: Any = JsonGet(step_name=gate, property_file=gate_file, json_path="gate.passed")
        top.append(
            ConditionStep(
                CONDITION_STEP,
                depends_on=list(register.upstream),
                conditions=[ConditionEquals(left=passed, right=True)],
                if_steps=[steps[s.name] for s in line.steps if s.gated],
                else_steps=[step(REJECTED_STEP, register.upstream)],
            )
        )
    return Pipeline(
        name=line.name,
        parameters=list(params.values()),
        steps=top,
        sagemaker_session=sagemaker_session,
        pipeline_definition_config=PipelineDefinitionConfig(use_custom_job_prefix=True),
    )


def _builder(sagemaker_session: PipelineSession) -> PipelineSession:
    """A session for the processors, on the same clients, with an empty SDK config.

    The SDK validates its config against its JSON schema on every lookup (0.2 s, seven per
    step); with an empty config it skips them. The pipeline itself keeps the caller's session,
    whose config the SDK reads once per ``upsert()``/``start()`` (the telemetry opt-out).
    """
    from sagemaker.workflow.pipeline_context import PipelineSession

    with quiet():
        found = PipelineSession(
            boto_session=sagemaker_session.boto_session,
            sagemaker_client=sagemaker_session.sagemaker_client,
            sagemaker_config=OPT_OUT,
        )
    found.sagemaker_config = {}
    return found


def _parameters(line: Line) -> dict[str, Any]:
    """The SDK parameter objects of :func:`parameters`, by name."""
    found: dict[str, Any] = {}
    for name, default in parameters(line).items():
        if isinstance(default, int):
            found[name] = ParameterInteger(name, default_value=default)
        else:
            found[name] = ParameterString(name, default_value=default)  # type: ignore[arg-type]
    return found


@contextmanager
def quiet() -> Iterator[None]:
    """Silence the SDK's warnings while it builds: notices about v3, about PipelineSession not
    starting jobs, and experimental classes, none of which a conveyor user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
