"""Hostile CLI arguments get one-line errors, never tracebacks (hardening findings 14 and 15)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from tests.e2e.conftest import RUNNER_ENV

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    result = CliRunner(env=RUNNER_ENV).invoke(app, ["init", str(tmp_path), "--example", "visa"])
    assert result.exit_code == 0, result.output
    return tmp_path


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["runs", "list", "--limit", "99999999999999999999999"], 2, "less than or equal to"),
        (["models", "rollback", "visa-approval", "--alias", "", "-r", "x"], 1, "alias ''"),
        (["models", "rollback", "visa-approval", "--to", "0", "-r", "x"], 2, "--to"),
        (["keys", "revoke", "nobody", "--by", "both"], 2, "--by"),
        (["serve", "--port", "70000"], 2, "--port"),
    ],
)
def test_hostile_arguments_are_one_line_errors(
    project: Path, args: list[str], code: int, message: str
) -> None:
    result = CliRunner(env=RUNNER_ENV).invoke(app, [*args, "-p", str(project)])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
