"""Vertex AI: the compiled KFP IR parses strictly into kfp's PipelineSpec and keeps conveyor's
DAG, with the gate as dsl.If/dsl.Else on the gate task's Boolean output."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import yaml

from conveyor.exporters import ExportError, Line, describe
from conveyor.project import Project
from tests.conftest import require_module
from tests.exporters import _kfp
from tests.exporters.conftest import IMAGE, SHARED, conveyor_dag

if TYPE_CHECKING:
    from pathlib import Path

vertex = require_module("conveyor.exporters.vertex", "the vertex extra (kfp)")


def _strict(text: str) -> dict[str, Any]:
    """The YAML as a dict, after checking it parses into PipelineSpec with no unknown field."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec: dict[str, Any] = yaml.safe_load(text)
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    return spec


def test_the_ir_parses_strictly_and_keeps_the_dag(line: Line) -> None:
    text, parameters = vertex.render(line)
    spec = _strict(text)
    assert _kfp.dag(spec) == line.dag()
    assert spec["pipelineInfo"]["name"] == line.name
    defaults = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    assert {k: v["defaultValue"] for k, v in defaults.items()} == parameters
    for task in _kfp.tasks(spec).values():
        box = _kfp.container(spec, task)
        assert box["image"] == IMAGE
        assert {e["name"]: e["value"] for e in box["env"]} == SHARED


def test_the_visa_dag_is_conveyors_plus_the_else_branch(visa: Path, shared: dict[str, str]) -> None:
    with Project.load(visa) as project:
        spec = _strict(vertex.render(describe(project, image=IMAGE))[0])
    found = _kfp.dag(spec)
    assert found.pop("register_rejected") == found["register"]
    assert found == conveyor_dag(visa)


def test_the_gate_decides_register_or_register_rejected(visa: Path, shared: dict[str, str]) -> None:
    with Project.load(visa) as project:
        spec = _strict(vertex.render(describe(project, image=IMAGE))[0])
    tasks = _kfp.tasks(spec)
    gate_out = {("gate", "gate_passed"): "true"}
    gate_failed = {("gate", "gate_passed"): "false"}
    assert _kfp.triggered(tasks["register"], gate_out)
    assert not _kfp.triggered(tasks["register"], gate_failed)
    assert _kfp.triggered(tasks["register_rejected"], gate_failed)
    assert not _kfp.triggered(tasks["register_rejected"], gate_out)
    assert all(not t.conditions for n, t in tasks.items() if not n.startswith("register"))
    gate_outputs = spec["components"][tasks["gate"].component]["outputDefinitions"]["parameters"]
    assert gate_outputs["gate_passed"]["parameterType"] == "BOOLEAN"
    # conveyor's cache decides what re-runs, never KFP's
    assert {t["cachingOptions"].get("enableCache", False) for t in _all_tasks(spec)} == {False}


def test_each_task_runs_the_run_step_contract(visa: Path, shared: dict[str, str]) -> None:
    with Project.load(visa) as project:
        spec = _strict(vertex.render(describe(project, image=IMAGE))[0])
    tasks = _kfp.tasks(spec)

    def argv(name: str) -> list[str]:
        return _kfp.argv(
            spec,
            tasks[name],
            parameters={"data_uri": "gs://b/visa.csv", "seed": 7},
            job_id="job-1",
            output_file=lambda task, out: f"/out/{task.key}/{out}",
        )

    head = ["conveyor", "run", "train", "--project", "/app", "--run-id", "job-1", "--step"]
    sets = ["--set", "data.source.path=gs://b/visa.csv", "--set", "data.split.seed=7"]
    assert argv("gate") == [
        *head,
        "gate",
        *sets,
        "--summary",
        "/out/gate/summary",
        "--gate-passed",
        "/out/gate/gate_passed",
    ]
    assert argv("register_rejected")[: len(head) + 1] == [*head, "register"]


def test_local_stores_are_refused(visa: Path) -> None:
    with Project.load(visa) as project:
        line = describe(project, image=IMAGE)
    with pytest.raises(ExportError, match="--target vertex"):
        vertex.render(line)


def _all_tasks(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container task's IR entry (with its cachingOptions)."""
    found = []
    for component in [spec["root"], *spec["components"].values()]:
        for task in component.get("dag", {}).get("tasks", {}).values():
            if "executorLabel" in spec["components"][task["componentRef"]["name"]]:
                found.append(task)
    return found
