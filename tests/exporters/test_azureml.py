"""Azure ML: the pipeline job passes the SDK's validation, keeps conveyor's DAG through the
summary folders, and dumps to YAML that loads back to the same job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import yaml

from conveyor.exporters import ExportError, Line, describe
from conveyor.project import Project
from tests.conftest import require_module
from tests.exporters.conftest import IMAGE, SHARED

if TYPE_CHECKING:
    from pathlib import Path

azureml = require_module("conveyor.exporters.azureml", "the azureml extra (azure-ai-ml)")


def _dag(job: dict[str, Any]) -> dict[str, set[str]]:
    """Job name -> the jobs whose summary it takes as an input (Azure ML's only ordering)."""
    found: dict[str, set[str]] = {}
    for name, node in job["jobs"].items():
        bound = [i["path"] for i in node.get("inputs", {}).values() if isinstance(i, dict)]
        found[name] = {
            p.removeprefix("${{parent.jobs.").split(".")[0]
            for p in bound
            if p.startswith("${{parent.jobs.")
        }
    return found


def test_the_job_validates_round_trips_and_keeps_the_dag(line: Line, tmp_path: Path) -> None:
    job = azureml.pipeline_job(line)
    assert azureml.validate(job).passed
    text, parameters = azureml.render(line)
    dumped = yaml.safe_load(text)
    expected = line.dag()
    expected.pop("register_rejected", None)  # no branches on Azure ML: register fails instead
    assert _dag(dumped) == expected
    assert dumped.get("inputs", {}) == parameters

    path = tmp_path / "pipeline.yml"
    path.write_text(text, encoding="utf-8")
    loaded = azureml.load(path)
    assert azureml.validate(loaded).passed
    again = tmp_path / "again.yml"
    with azureml.quiet():
        loaded.dump(again)
    assert yaml.safe_load(again.read_text(encoding="utf-8")) == dumped


def test_each_job_runs_the_image_with_the_stores_and_the_contract(
    visa: Path, shared: dict[str, str]
) -> None:
    with Project.load(visa) as project:
        dumped = yaml.safe_load(azureml.render(describe(project, image=IMAGE))[0])
    assert dumped["settings"]["default_compute"] == f"azureml:{azureml.COMPUTE}"
    for name, node in dumped["jobs"].items():
        component = node["component"]
        assert component["environment"]["image"] == IMAGE
        assert component["environment_variables"] == SHARED
        assert component["is_deterministic"] is False  # never reuse another run's step
        assert f"--step {name} " in component["command"] + " "
        assert "--run-id " + azureml.RUN_KEY in component["command"]
    gate = dumped["jobs"]["gate"]["component"]["command"]
    assert gate.endswith(
        "--summary ${{outputs.summary}}/summary.json --gate-passed ${{outputs.summary}}/gate_passed"
    )
    assert '--set "data.split.seed=${{inputs.seed}}"' in gate


def test_the_run_key_fails_loudly_outside_azure_ml() -> None:
    import subprocess

    probe = subprocess.run(
        ["bash", "-c", f"echo {azureml.RUN_KEY}"], capture_output=True, text=True, env={}
    )
    assert probe.returncode != 0 and "AZUREML_ROOT_RUN_ID is unset" in probe.stderr
    inside = subprocess.run(
        ["bash", "-c", f"echo {azureml.RUN_KEY}"],
        capture_output=True,
        text=True,
        env={"AZUREML_ROOT_RUN_ID": "keen_lime_7x2k"},
    )
    assert inside.stdout.strip() == "keen_lime_7x2k"


def test_local_stores_are_refused(visa: Path) -> None:
    with Project.load(visa) as project:
        line = describe(project, image=IMAGE)
    with pytest.raises(ExportError, match="--target azureml"):
        azureml.render(line)
