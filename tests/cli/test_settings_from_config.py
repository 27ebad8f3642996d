"""``conveyor serve`` / ``monitor`` / ``watch`` settings come from conveyor.yaml; a flag
overrides the same field, validated like the file (issue 13: one place for each default)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import yaml
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.cli.monitor import monitoring_settings
from conveyor.cli.serve import serve_settings
from conveyor.config import ServingConfig
from conveyor.errors import ConfigError
from conveyor.monitoring.drift import DriftSettings
from conveyor.project import Project
from conveyor.watch import drift_settings
from tests.e2e.conftest import RUNNER_ENV

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def _project(root: Path, **sections: dict[str, Any]) -> Path:
    result = CliRunner(env=RUNNER_ENV).invoke(app, ["init", str(root), "--example", "visa"])
    assert result.exit_code == 0, result.output
    path = root / "conveyor.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root


@pytest.fixture
def proj(tmp_path: Path) -> Iterator[Project]:
    root = _project(
        tmp_path,
        serving={"port": 8123, "max_records": 7, "auth": "none", "max_body_mb": 1},
        monitoring={
            "window_hours": 6,
            "interval_seconds": 30,
            "id_column": "case_id",
            "drift": {"threshold": 0.3, "columns": {"continent": {"ignore": True}}},
        },
    )
    with Project.load(root) as loaded:
        yield loaded


def test_serve_settings_come_from_conveyor_yaml(proj: Project) -> None:
    settings = serve_settings(proj, None)
    assert (settings.port, settings.max_records, settings.auth_required) == (8123, 7, False)
    assert settings.max_body_bytes == 1 << 20
    assert settings.host == ServingConfig().host  # not in the file: the config's default
    assert settings.model == "visa-approval@production" and settings.project == str(proj.root)


def test_a_serve_flag_overrides_only_its_field(proj: Project) -> None:
    flags = {"port": 9001, "public_docs": True, "auth": None, "workers": None}
    settings = serve_settings(proj, "visa-approval:3", flags)
    assert (settings.port, settings.public_docs, settings.model) == (9001, True, "visa-approval:3")
    assert (settings.max_records, settings.auth) == (7, "none")  # still from conveyor.yaml


def test_a_serve_override_is_validated_like_the_file(proj: Project) -> None:
    with pytest.raises(ConfigError) as info:
        serve_settings(proj, None, {"max_records": 0})
    assert str(info.value) == (
        "conveyor serve: max_records: input should be greater than or equal to 1"
    )


def test_monitor_settings_come_from_conveyor_yaml_and_flags_override(proj: Project) -> None:
    mon = monitoring_settings(proj, window_hours=None, id_column=None)
    assert (mon.window_hours, mon.id_column, mon.interval_seconds) == (6, "case_id", 30)
    flagged = monitoring_settings(proj, window_hours=0.5, id_column="request_id")
    assert (flagged.window_hours, flagged.id_column, flagged.interval_seconds) == (
        0.5,
        "request_id",
        30,
    )


def test_drift_settings_are_the_config_model(proj: Project) -> None:
    settings = drift_settings(proj)
    assert isinstance(settings, DriftSettings)
    assert settings.threshold == 0.3 and settings.columns["continent"].ignore
    assert settings.p_value == DriftSettings().p_value  # not in the file: the one default


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["monitor", "--window", "0"], "conveyor monitor: window_hours: input should be greater"),
        (["watch", "--interval", "-1"], "conveyor watch: interval_seconds: input should be"),
    ],
)
def test_a_bad_flag_is_reported_like_a_bad_config_value(
    tmp_path: Path, args: list[str], message: str
) -> None:
    root = _project(tmp_path)
    result = CliRunner(env=RUNNER_ENV).invoke(app, [*args, "-p", str(root)])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
