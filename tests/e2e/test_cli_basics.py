"""The CLI surface: help, version, usage errors, config errors, missing things, init twice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor._version import __version__
from conveyor.cli.main import app
from tests.e2e.conftest import conveyor


def test_help_lists_the_commands() -> None:
    proc = conveyor("--help")
    for command in ("init", "run", "runs", "demo"):
        assert re.search(rf"^\W*{command}\s", proc.stdout, re.MULTILINE), command
    assert proc.stderr == ""


def test_no_arguments_shows_help() -> None:
    proc = conveyor(check=False)
    assert proc.returncode in (0, 2)  # click's no_args_is_help: usage, no traceback
    assert "Usage" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", [["run"], ["runs"], ["runs", "list"], ["runs", "show"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_version() -> None:
    proc = conveyor("--version")
    assert proc.stdout.strip() == f"conveyor {__version__}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bogus"], "No such command"),
        (["run", "--bogus"], "No such option"),
        (["runs", "list", "--limit", "0"], "--limit"),
        (["run", "--workers", "many"], "--workers"),
        (["runs", "show"], "Missing argument"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    proc = conveyor(*args, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr


def test_init_unknown_example_is_a_usage_error(tmp_path: Path) -> None:
    proc = conveyor("init", tmp_path / "p", "--example", "nope", check=False)
    assert proc.returncode == 2
    assert "visa" in proc.stdout + proc.stderr
    assert not (tmp_path / "p" / "conveyor.yaml").exists()


def test_run_without_conveyor_yaml(tmp_path: Path) -> None:
    proc = conveyor("run", "-p", tmp_path, check=False)
    assert proc.returncode == 1
    assert "conveyor.yaml" in proc.stderr
    assert "conveyor init" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / ".conveyor").exists()  # nothing created in a non-project


def test_project_from_cwd_or_env_var(tmp_path: Path, visa_project: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = conveyor("runs", "list", cwd=elsewhere, check=False)  # no -p: the current folder
    assert proc.returncode == 1
    assert "conveyor.yaml" in proc.stderr
    assert conveyor("runs", "list", "--json", cwd=visa_project).stdout.strip() == "[]"
    via_env = conveyor(
        "runs", "list", "--json", cwd=elsewhere, env={"CONVEYOR_PROJECT": str(visa_project)}
    )
    assert via_env.stdout.strip() == "[]"


BAD_CONFIG = """\
project: bad
data:
  source: {type: csv, path: data/x.csv}
  target: y
  bogus_key: 1
training:
  candidates:
    - {name: a, estimator: sklearn.linear_model.LogisticRegression}
    - {name: b}
registry: {model: m}
"""


def test_invalid_config_names_every_problem(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text(BAD_CONFIG, encoding="utf-8")
    proc = conveyor("run", "-p", tmp_path, check=False)
    assert proc.returncode == 1
    assert "conveyor.yaml: training.candidates[1].estimator: field required" in proc.stderr
    assert "conveyor.yaml: data.bogus_key: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text("project: [unclosed\n", encoding="utf-8")
    proc = conveyor("run", "-p", tmp_path, check=False)
    assert proc.returncode == 1
    assert "conveyor.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_pipeline(visa_project: Path) -> None:
    proc = conveyor("run", "nope", "-p", visa_project, check=False)
    assert proc.returncode == 1
    assert "no pipeline 'nope'" in proc.stderr
    assert "train" in proc.stderr


def test_runs_show_unknown_run(visa_project: Path) -> None:
    proc = conveyor("runs", "show", "nope", "-p", visa_project, check=False)
    assert proc.returncode == 1
    assert "no run 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_runs_list_on_a_fresh_project(visa_project: Path) -> None:
    assert conveyor("runs", "list", "-p", visa_project, "--json").stdout.strip() == "[]"
    assert "no runs yet" in conveyor("runs", "list", "-p", visa_project).stdout


def test_init_twice_needs_force(tmp_path: Path) -> None:
    first = conveyor("init", tmp_path)
    assert "created" in first.stdout
    config = tmp_path / "conveyor.yaml"
    config.write_text(config.read_text(encoding="utf-8") + "# my edit\n", encoding="utf-8")
    again = conveyor("init", tmp_path, check=False)
    assert again.returncode == 1
    assert "already exists" in again.stdout + again.stderr
    assert "--force" in again.stdout + again.stderr
    assert "# my edit" in config.read_text(encoding="utf-8")  # left alone
    forced = conveyor("init", tmp_path, "--force")
    assert forced.returncode == 0
    assert "# my edit" not in config.read_text(encoding="utf-8")


def test_init_writes_a_loadable_minimal_project(tmp_path: Path) -> None:
    conveyor("init", tmp_path / "minimal")
    from conveyor.project import Project

    proj = Project.load(tmp_path / "minimal")
    assert proj.config.registry is not None
    assert proj.config.registry.model == "minimal-model"
    assert (tmp_path / "minimal" / ".gitignore").read_text(encoding="utf-8") == ".conveyor/\n"


def test_init_errors_go_to_stderr(tmp_path: Path) -> None:
    conveyor("init", tmp_path)
    again = conveyor("init", tmp_path, check=False)
    assert "already exists" in again.stderr
    assert again.stdout == ""
