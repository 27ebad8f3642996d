"""``conveyor export pipeline``: writes OUT for each target and says what to do next; a bad
target, a missing SDK, local stores or an unknown pipeline end in one clear message."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import pytest
import yaml
from typer.testing import CliRunner

from conveyor.cli.main import app
from tests.e2e.conftest import RUNNER_ENV
from tests.exporters.conftest import IMAGE, SHARED

if TYPE_CHECKING:
    from pathlib import Path


def _export(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        ["export", "pipeline", *map(str, args)],
        env={**RUNNER_ENV, **(env or {})},
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("target", "suffix", "next_step"),
    [
        ("sagemaker", "json", "aws sagemaker create-pipeline --pipeline-name visa-train"),
        ("vertex", "yaml", "aiplatform.PipelineJob(display_name='visa-train'"),
        ("azureml", "yml", "az ml job create --file"),
    ],
)
def test_each_target_writes_out_and_says_what_next(
    target: str, suffix: str, next_step: str, visa: Path, tmp_path: Path
) -> None:
    out = tmp_path / "defs" / f"visa.{suffix}"
    code, stdout, stderr = _export(
        "--target", target, "-p", visa, "--image", IMAGE, out, env=SHARED
    )
    assert code == 0, stderr
    assert out.is_file() and (json.loads if suffix == "json" else yaml.safe_load)(out.read_text())
    assert f"wrote {out}: {target} pipeline visa-train, 14 steps running {IMAGE}" in stdout
    assert next_step in stdout
    assert "note: no --image" not in stdout


def test_json_output_masks_a_password_and_the_default_image_is_noted(
    visa: Path, tmp_path: Path
) -> None:
    env = {**SHARED, "CONVEYOR_METADATA_URL": "postgresql+psycopg://conveyor:s3cret@db/conveyor"}
    out = tmp_path / "visa.json"
    code, stdout, stderr = _export("--target", "sagemaker", "-p", visa, out, "--json", env=env)
    assert code == 0, stderr
    done = json.loads(stdout)
    assert done["image"] == "visa-server:latest" and done["steps"][0] == "ingest"
    assert done["parameters"]["MetadataUrl"] == "postgresql+psycopg://conveyor:***@db/conveyor"
    assert "s3cret" not in stdout
    code, stdout, stderr = _export("--target", "sagemaker", "-p", visa, out, env=env)
    assert "note: no --image given; visa-server:latest" in stdout
    assert "holds the metadata store's password" in stderr


def test_a_bad_target_is_a_usage_error(visa: Path, tmp_path: Path) -> None:
    code, _, stderr = _export("--target", "kubeflow", "-p", visa, tmp_path / "x")
    assert code == 2
    assert "'kubeflow' is not one of 'sagemaker', 'vertex', 'azureml'" in stderr


def test_an_unknown_pipeline_names_the_ones_there_are(visa: Path, tmp_path: Path) -> None:
    code, _, stderr = _export(
        "--target", "vertex", "--pipeline", "nightly", "-p", visa, tmp_path / "x", env=SHARED
    )
    assert code == 1 and "no pipeline 'nightly'; this project has: train" in stderr


def test_local_stores_say_which_variables_to_set(visa: Path, tmp_path: Path) -> None:
    code, _, stderr = _export("--target", "azureml", "-p", visa, tmp_path / "x.yml")
    assert code == 1
    assert "--target azureml: each step runs in its own container" in stderr
    assert "CONVEYOR_METADATA_URL" in stderr and not (tmp_path / "x.yml").exists()


@pytest.mark.parametrize(
    ("target", "sdk", "extra"),
    [
        ("vertex", "kfp", "vertex"),
        ("sagemaker", "sagemaker", "sagemaker"),
        ("azureml", "azure.ai.ml", "azureml"),
    ],
)
def test_a_missing_sdk_names_the_extra_to_install(
    target: str, sdk: str, extra: str, visa: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the SDK were not installed: Python refuses to import a module mapped to None.
    for name in [m for m in sys.modules if m == sdk or m.startswith(sdk + ".")] or [sdk]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, f"conveyor.exporters.{target}", raising=False)
    code, _, stderr = _export("--target", target, "-p", visa, tmp_path / "x", env=SHARED)
    assert code == 1
    assert f"--target {target} needs the {sdk} SDK, which is not installed" in stderr
    assert f"pip install 'conveyor[{extra}]'" in stderr
    assert not (tmp_path / "x").exists()
