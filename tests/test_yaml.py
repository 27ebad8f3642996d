"""conveyor.yaml and schema.yaml are read with YAML 1.2 scalars: class names stay text."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from conveyor import _yaml
from conveyor.config import load_config
from conveyor.data.schema import load_schema

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "On"])
def test_yaml_11_booleans_stay_text(word: str) -> None:
    assert _yaml.load(f"a: {word}\nb: [{word}]") == {"a": word, "b": [word]}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("12", 12),
        ("010", 10),
        ("-3", -3),
        ("1_000", 1000),
        ("0x1F", 31),
        ("1.5", 1.5),
        ("1e6", 1e6),
        ("1e-3", 0.001),
        ("~", None),
        ("1:30", "1:30"),
        ("2024-01-01", "2024-01-01"),
        ('"yes"', "yes"),
    ],
)
def test_scalars_follow_yaml_12(text: str, value: object) -> None:
    loaded = _yaml.load(f"a: {text}")["a"]
    assert loaded == value
    assert type(loaded) is type(value)


def test_dump_quotes_what_yaml_11_readers_would_misread() -> None:
    text = _yaml.dump({"allowed": ["yes", "no", "on"]})
    assert "'yes'" in text and "'no'" in text
    assert _yaml.load(text) == {"allowed": ["yes", "no", "on"]}


def test_positive_class_yes_loads_as_the_text_yes(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text(
        "project: p\n"
        "data: {source: {type: csv, path: d.csv}, target: subscribed, positive_class: yes}\n"
        "training: {candidates: [{name: a, estimator: sklearn.dummy.DummyClassifier}]}\n"
        "registry: {model: m}\n",
        encoding="utf-8",
    )
    config = load_config(tmp_path, overrides=["data.split.stratify=no"])
    assert config.data is not None
    assert config.data.positive_class == "yes"
    # --set values are YAML 1.2 too: "no" is text, which a bool field still reads as false
    assert config.data.split.stratify is False


def test_schema_categories_named_yes_no_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(
        "columns:\n  answer: {dtype: category, allowed: [yes, no, maybe]}\n", encoding="utf-8"
    )
    schema = load_schema(path)
    assert schema.columns["answer"].rule("allowed")[0] == ["yes", "no", "maybe"]
