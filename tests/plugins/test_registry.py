"""The plugin registry: built-ins without entry points, and messages that say what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from conveyor import _plugins
from conveyor.config import AlertConfig, ExecutorConfig, parse_config
from conveyor.data import sources
from conveyor.errors import ConfigError
from conveyor.monitoring import alerts
from conveyor.project import Project
from conveyor.store.artifacts import serializers

if TYPE_CHECKING:
    from pathlib import Path

BUILTINS = {
    _plugins.EXECUTORS: ["local", "dask"],
    _plugins.SOURCES: ["csv", "parquet", "sql", "mongodb"],
    _plugins.SERIALIZERS: ["parquet", "json", "png", "bytes", "joblib"],
    _plugins.ALERTS: ["log", "webhook", "slack"],
}


def _config(**sections: Any) -> dict[str, Any]:
    return {"project": "p", "data": {"source": {"type": "csv"}, "target": "y"}, **sections}


@pytest.mark.usefixtures("no_plugins")
def test_builtins_load_without_reading_entry_points() -> None:
    assert isinstance(sources.source_for("csv"), sources.CsvSource)
    assert isinstance(sources.source_for("mongodb"), sources.MongoSource)
    assert serializers.deserialize(*serializers.serialize({"a": 1})) == {"a": 1}
    made = alerts.channels_from_config([AlertConfig(type="log")])
    assert isinstance(made[0], alerts.LogChannel)
    slack = {"type": "slack", "url": "https://hooks.example.com/x"}
    parse_config(_config(executor={"type": "dask"}, monitoring={"alerts": [slack]}))
    assert _plugins._discovered == {}  # no distribution was scanned: startup stays fast


@pytest.mark.usefixtures("no_plugins")
def test_names_start_with_the_builtins_in_order() -> None:
    for kind, names in BUILTINS.items():
        assert _plugins.names(kind)[: len(names)] == names
        assert list(kind.builtins) == names


@pytest.mark.usefixtures("no_plugins")
def test_unknown_name_lists_the_available_ones_and_how_to_add_one() -> None:
    with pytest.raises(ConfigError) as caught:
        sources.source_for("s3-select")
    message = str(caught.value)
    assert message.startswith(
        "unknown data source 's3-select'; available: csv, parquet, sql, mongodb"
    )
    assert "entry point group 'conveyor.sources'" in message


@pytest.mark.usefixtures("no_plugins")
@pytest.mark.parametrize(
    ("sections", "field", "available"),
    [
        ({"data": {"source": {"type": "s3-select"}, "target": "y"}}, "data.source.type", "csv, "),
        ({"monitoring": {"alerts": [{"type": "pagerduty"}]}}, "monitoring.alerts[0].type", "log, "),
        ({"executor": {"type": "ray"}}, "executor.type", "local, dask"),
    ],
)
def test_config_rejects_an_unknown_type_naming_the_field(
    sections: dict[str, Any], field: str, available: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(**sections))
    assert f"conveyor.yaml: {field}: unknown " in str(caught.value)
    assert f"available: {available}" in str(caught.value)


def test_config_accepts_an_installed_plugin_type(demo_plugin: Path) -> None:
    config = parse_config(
        _config(
            data={"source": {"type": "jsonl", "path": "d.jsonl"}, "target": "y"},
            monitoring={"alerts": [{"type": "file", "options": {"path": "a.jsonl"}}]},
        )
    )
    assert config.data is not None and config.data.source.type == "jsonl"
    assert config.monitoring.alerts[0].options == {"path": "a.jsonl"}
    assert "jsonl" in _plugins.names(_plugins.SOURCES)
    assert "file" in _plugins.unknown_message(_plugins.ALERTS, "pagerduty")


@pytest.mark.parametrize("model", [AlertConfig, ExecutorConfig])
def test_builtin_types_still_refuse_options(model: type[AlertConfig | ExecutorConfig]) -> None:
    builtin = model().type
    with pytest.raises(ValueError, match=f"only plugin .* take options, not {builtin}"):
        model(type=builtin, options={"severity": "high"})


def test_a_plugin_that_fails_to_import_names_its_entry_point_and_distribution(
    broken_plugin: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        sources.source_for("exploding")
    message = str(caught.value)
    assert "data source 'exploding': cannot load entry point exploding = " in message
    assert "conveyor_broken_plugin.exploding:Source" in message
    assert "distribution conveyor-broken-plugin 0.1" in message
    assert "ImportError: No module named 'pagerduty_sdk'" in message


def test_a_plugin_of_the_wrong_kind_says_what_it_must_be(broken_plugin: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        sources.source_for("number")
    message = str(caught.value)
    assert "data source 'number': entry point number = conveyor_broken_plugin:NOT_A_SOURCE" in (
        message
    )
    assert "distribution conveyor-broken-plugin 0.1) is not a data source (int has no load()" in (
        message
    )
    assert "load(source, base_dir) -> DataFrame" in message


def test_an_executor_plugin_that_is_not_callable_is_refused(
    broken_plugin: Path, tmp_path: Path
) -> None:
    project = Project(tmp_path, parse_config(_config(executor={"type": "number"})))
    with pytest.raises(ConfigError, match="executor 'number': entry point number = .* is not an? "):
        project.executor()


def test_a_plugin_cannot_replace_a_builtin(broken_plugin: Path) -> None:
    # the broken package also registers "csv": the built-in wins, and is listed once
    assert isinstance(sources.source_for("csv"), sources.CsvSource)
    assert _plugins.names(_plugins.SOURCES).count("csv") == 1
    assert set(_plugins.names(_plugins.SOURCES)) >= {"exploding", "number"}


def test_unknown_executor_from_the_command_line_lists_the_available_ones(tmp_path: Path) -> None:
    project = Project(tmp_path, parse_config(_config()))
    with pytest.raises(ConfigError, match=r"unknown executor 'ray'; available: local, dask"):
        project.executor("ray")


def test_the_local_executor_is_built_from_the_registry(tmp_path: Path) -> None:
    from conveyor.runner import LocalExecutor

    config = _config(store={"metadata": "sqlite://", "artifacts": "memory://"})
    with Project(tmp_path, parse_config(config)) as project, project.executor() as executor:
        assert isinstance(executor, LocalExecutor)


def test_the_dask_executor_gets_the_store_uris_from_the_registry(tmp_path: Path) -> None:
    config = _config(store={"metadata": "sqlite://", "artifacts": "memory://"})
    project = Project(tmp_path, parse_config(config))
    with pytest.raises(ValueError, match="dask executor needs an artifact store its workers"):
        project.executor("dask")
