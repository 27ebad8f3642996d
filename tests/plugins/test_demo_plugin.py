"""A third-party source, alert channel and serializer, found through their entry points."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from conveyor.config import AlertConfig, SourceConfig, parse_config
from conveyor.data import sources
from conveyor.errors import ConfigError, DataValidationError
from conveyor.monitoring.alerts import Alert, channels_from_config, dispatch
from conveyor.pipeline import pipeline, step
from conveyor.project import Project
from conveyor.runner import Runner
from conveyor.store.artifacts import InMemoryArtifactStore, serializers
from conveyor.store.metadata import open_metadata_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.usefixtures("demo_plugin")

ALERT = Alert("dataset:m", "dataset", "Dataset drift on m:1", "drift in a, b", "m", {"version": 1})


def _jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_a_plugin_source_loads_describes_and_fingerprints(tmp_path: Path) -> None:
    _jsonl(tmp_path / "d.jsonl", [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}])
    source = SourceConfig(type="jsonl", path="d.jsonl")
    frame = sources.load(source, tmp_path)
    pd.testing.assert_frame_equal(frame, pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}))
    assert sources.describe(source, tmp_path) == f"jsonl:{tmp_path / 'd.jsonl'}"
    before = sources.file_checksum(source, tmp_path)
    _jsonl(tmp_path / "d.jsonl", [{"x": 1, "y": "a"}])
    assert before is not None and sources.file_checksum(source, tmp_path) != before


def test_what_a_plugin_source_raises_becomes_a_data_error_naming_the_type(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"x": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(DataValidationError, match=r"data.source \(type jsonl\): JSONDecodeError"):
        sources.load(SourceConfig(type="jsonl", path="d.jsonl"), tmp_path)
    with pytest.raises(DataValidationError, match="no such JSON-lines file"):  # its own error
        sources.load(SourceConfig(type="jsonl", path="missing.jsonl"), tmp_path)


def test_plugin_options_are_not_checked_as_pandas_options(tmp_path: Path) -> None:
    _jsonl(tmp_path / "d.jsonl", [{"x": 1}])
    source = SourceConfig(type="jsonl", path="d.jsonl", options={"chunksize": 10})
    assert len(sources.load(source, tmp_path)) == 1  # chunksize is refused for csv only


def test_a_plugin_channel_delivers_through_dispatch(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    channels = channels_from_config(
        [AlertConfig(type="log"), AlertConfig(type="file", options={"path": str(out)})]
    )
    store = open_metadata_store("sqlite://")
    try:
        assert dispatch(ALERT, channels, store, cooldown_seconds=60) == ["log", "file"]
        assert dispatch(ALERT, channels, store, cooldown_seconds=60) == []  # cooldown holds
    finally:
        store.close()
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [ALERT.payload()]


def test_a_failing_plugin_channel_does_not_stop_the_others(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "alerts.jsonl"
    channels = channels_from_config(
        [AlertConfig(type="file", options={"path": str(missing)}), AlertConfig(type="log")]
    )
    store = open_metadata_store("sqlite://")
    try:
        assert dispatch(ALERT, channels, store, cooldown_seconds=60) == ["log"]
        (event,) = store.list_events(action="alert.sent")
    finally:
        store.close()
    assert event.details["failed"]["file"].startswith("file: FileNotFoundError")


def test_a_setting_a_plugin_channel_refuses_names_the_entry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"monitoring.alerts\[1\]: options.path: .* required"):
        channels_from_config([AlertConfig(type="log"), AlertConfig(type="file")])


def test_a_plugin_serializer_takes_the_values_it_handles() -> None:
    assert serializers.serialize(Fraction(1, 3)) == ("fraction", b"1/3")
    assert serializers.kind_of({"a": 1}) == "json"  # built-ins keep their values
    assert serializers.kind_of(pd.DataFrame({"a": [1]})) == "parquet"
    assert serializers.kind_of(object()) == "joblib"
    store = InMemoryArtifactStore()
    ref = store.put(Fraction(2, 7))
    assert store.get(ref.digest, ref.kind) == Fraction(2, 7)


@step(outputs="frame")
def make(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n)})


@step
def total(frame: pd.DataFrame) -> dict[str, int]:
    return {"total": int(frame["x"].sum())}


def test_a_plugin_executor_runs_the_steps(tmp_path: Path) -> None:
    raw = {
        "project": "p",
        "store": {"metadata": "sqlite://", "artifacts": "memory://"},
        "executor": {"type": "counting", "options": {"label": "demo"}},
    }
    with Project(tmp_path, parse_config(raw)) as project, project.executor() as executor:
        result = Runner(project.metadata, project.artifacts, executor).run(pipeline(make, total))
        assert result.ok
        assert project.artifacts.get(result.outputs["total"].digest, "json") == {"total": 10}
        assert getattr(executor, "submitted", None) == ["make", "total"]
        assert getattr(executor, "label", None) == "demo"
        assert {r.executor for r in project.metadata.list_runs()} == {"counting"}
