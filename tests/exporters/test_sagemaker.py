"""SageMaker: the definition JSON loads back with conveyor's DAG in DependsOn and the gate as a
ConditionStep; the SDK upserts and starts it against moto's SageMaker API on loopback."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from conveyor.exporters import Line, describe
from conveyor.project import Project
from tests.conftest import S3_KEY, S3_REGION, S3_SECRET, require_module
from tests.exporters.conftest import IMAGE, SHARED

if TYPE_CHECKING:
    from pathlib import Path

sagemaker = require_module("conveyor.exporters.sagemaker", "the sagemaker extra (sagemaker<3)")

ROLE = "arn:aws:iam::123456789012:role/conveyor-pipeline"


def _steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every step by name, those inside a condition's branches included."""
    found: dict[str, dict[str, Any]] = {}
    for step in definition["Steps"]:
        found[step["Name"]] = step
        if step["Type"] == "Condition":
            args = step["Arguments"]
            found.update(_steps({"Steps": args["IfSteps"] + args["ElseSteps"]}))
    return found


def test_the_definition_loads_back_with_the_dag(line: Line) -> None:
    text, parameters = sagemaker.render(line)
    definition = json.loads(text)
    steps = _steps(definition)
    processing = {
        n: set(s.get("DependsOn", [])) for n, s in steps.items() if s["Type"] == "Processing"
    }
    assert processing == line.dag()
    given = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    assert given == parameters
    assert parameters["MetadataUrl"] == SHARED["CONVEYOR_METADATA_URL"]
    for step in (s for s in steps.values() if s["Type"] == "Processing"):
        app = step["Arguments"]["AppSpecification"]
        assert (app["ImageUri"], app["ContainerEntrypoint"]) == (IMAGE, ["conveyor"])
        assert step["Arguments"]["Environment"] == {
            "CONVEYOR_METADATA_URL": {"Get": "Parameters.MetadataUrl"},
            "CONVEYOR_ARTIFACTS_URI": {"Get": "Parameters.ArtifactsUri"},
        }
        run_id = app["ContainerArguments"][app["ContainerArguments"].index("--run-id") + 1]
        assert run_id == {"Get": "Execution.PipelineExecutionId"}


def test_the_gate_is_a_condition_step_on_the_gate_summary(
    visa: Path, shared: dict[str, str]
) -> None:
    with Project.load(visa) as project:
        line = describe(project, image=IMAGE)
    definition = json.loads(sagemaker.render(line)[0])
    top = {s["Name"]: s for s in definition["Steps"]}
    assert "register" not in top and "register_rejected" not in top
    condition = top[sagemaker.CONDITION_STEP]
    assert set(condition["DependsOn"]) == set(line.step("register").upstream)
    args = condition["Arguments"]
    assert args["Conditions"] == [
        {
            "Type": "Equals",
            "LeftValue": {
                "Std:JsonGet": {
                    "PropertyFile": {"Get": "Steps.gate.PropertyFiles.GateSummary"},
                    "Path": "gate.passed",
                }
            },
            "RightValue": True,
        }
    ]
    assert [s["Name"] for s in args["IfSteps"]] == ["register"]
    assert [s["Name"] for s in args["ElseSteps"]] == ["register_rejected"]
    rejected = args["ElseSteps"][0]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert rejected[rejected.index("--step") + 1] == "register"
    gate = top["gate"]
    assert gate["PropertyFiles"] == [
        {"PropertyFileName": "GateSummary", "OutputName": "summary", "FilePath": "summary.json"}
    ]
    gate_args = gate["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert gate_args[gate_args.index("--summary") + 1] == "/opt/ml/processing/summary/summary.json"
    (output,) = gate["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/summary"


def test_local_stores_leave_the_store_parameters_required(visa: Path) -> None:
    with Project.load(visa) as project:
        line = describe(project, image=IMAGE)
    parameters = sagemaker.render(line)[1]
    assert parameters["MetadataUrl"] is None and parameters["ArtifactsUri"] is None
    assert parameters["RoleArn"] is None


@pytest.mark.service
def test_upsert_and_start_against_moto(
    visa: Path, shared: dict[str, str], s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every AWS client goes to moto on loopback, with dummy credentials
    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": S3_REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with Project.load(visa) as project:
        line = describe(project, image=IMAGE)
    session = sagemaker.session(region=S3_REGION, endpoint_url=s3_endpoint)
    built = sagemaker.pipeline(line, session)
    with sagemaker.quiet():
        created = built.upsert(role_arn=ROLE)
        again = built.upsert(role_arn=ROLE, description="updated")  # the update path
        execution = built.start(parameters={"RoleArn": ROLE, "SplitSeed": 7})
    assert created["PipelineArn"] == again["PipelineArn"]
    client = session.sagemaker_client
    stored = client.describe_pipeline(PipelineName=line.name)
    assert json.loads(stored["PipelineDefinition"]) == json.loads(sagemaker.render(line)[0])
    assert stored["RoleArn"] == ROLE
    described = execution.describe()
    assert described["PipelineArn"] == created["PipelineArn"]
    listed = client.list_pipeline_executions(PipelineName=line.name)["PipelineExecutionSummaries"]
    assert [e["PipelineExecutionArn"] for e in listed] == [execution.arn]
