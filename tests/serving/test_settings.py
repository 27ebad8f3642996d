"""ServeSettings are conveyor.yaml's ``serving:`` plus runtime fields: one set of defaults."""

from __future__ import annotations

import pytest

from conveyor.config import ServingConfig
from conveyor.errors import ConfigError
from conveyor.serving.app import ServeSettings

RUNTIME = {
    "project",
    "model",
    "bundle",
    "platform",
    "log_dir",
    "max_batch_rows",
    "poll_seconds",
    "log_flush_seconds",
    "log_flush_rows",
}


def test_the_defaults_are_the_configs() -> None:
    settings = ServeSettings(project="p", model="m@production")
    assert settings.model_dump(exclude=RUNTIME) == ServingConfig().model_dump()
    assert settings.auth_required and settings.max_body_bytes == 8 << 20
    assert settings.max_file_bytes == 256 << 20


def test_from_config_keeps_every_serving_value() -> None:
    config = ServingConfig(port=9000, auth="none", max_records=3, max_file_mb=0.5)
    settings = ServeSettings.from_config(config, project="p", model="m:1", poll_seconds=0.1)
    assert settings.model_dump(exclude=RUNTIME) == config.model_dump()
    assert not settings.auth_required and settings.max_file_bytes == 1 << 19
    assert settings.poll_seconds == 0.1


def test_worker_processes_get_the_same_settings_as_json() -> None:
    settings = ServeSettings.from_config(
        ServingConfig(unknown_categories="unknown", max_body_mb=2.5),
        project="/srv/p",
        model="m@staging",
        log_flush_seconds=0.5,
    )
    assert ServeSettings.model_validate_json(settings.to_env()) == settings


@pytest.mark.parametrize(
    ("runtime", "message"),
    [
        ({"poll_seconds": 0}, "serving settings: poll_seconds: input should be greater than 0"),
        ({"colour": "red"}, "serving settings: colour: unknown key"),
    ],
)
def test_runtime_values_are_validated_too(runtime: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServeSettings.from_config(ServingConfig(), project="p", model="m", **runtime)


def test_an_override_changes_only_its_field_and_is_validated() -> None:
    settings = ServeSettings(project="p", model="m", max_records=5)
    assert settings.override(port=1234).model_dump() == {**settings.model_dump(), "port": 1234}
    with pytest.raises(ConfigError, match="conveyor serve: port: input should be less than"):
        settings.override(port=70000)
