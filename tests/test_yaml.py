"""conveyor.yaml and schema.yaml are read with YAML 1.2 scalars: class names stay text."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from conveyor import _yaml
from conveyor.config import load_config
from conveyor.data.schema import load_schema
from conveyor.errors import ConfigError

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


def _alias_bomb(levels: int = 9) -> str:
    """A few hundred bytes that would expand to 10**levels strings."""
    lines = ['l0: &l0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels):
        refs = ",".join([f"*l{i - 1}"] * 10)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_load() -> None:
    """Hardening finding 13: the config loaded, then `conveyor run` expanded it (2.8 GB)."""
    with pytest.raises(_yaml.YAMLError, match="alias bomb"):
        _yaml.load(_alias_bomb())


def test_a_yaml_alias_bomb_in_conveyor_yaml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text(
        "project: p\nx-defaults:\n" + "".join(f"  {line}\n" for line in _alias_bomb().splitlines())
    )
    with pytest.raises(ConfigError, match="conveyor.yaml: invalid YAML: aliases expand"):
        load_config(tmp_path)


def test_aliases_and_merge_keys_within_bounds_still_work() -> None:
    text = "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\nd: *b\n"
    assert _yaml.load(text) == {
        "base": {"x": 1, "y": 2},
        "c": {"x": 1, "y": 3},
        "d": {"x": 1, "y": 2},
    }


@pytest.mark.parametrize(
    "text", ["[" * 3000 + "]" * 3000, "a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 200))]
)
def test_deep_nesting_is_an_error_not_a_recursion_crash(text: str) -> None:
    """Hardening finding 14: YAML nested 3,000+ deep raised RecursionError."""
    with pytest.raises(_yaml.YAMLError, match="nested deeper than 100 levels"):
        _yaml.load(text)


def test_a_key_given_twice_is_an_error_naming_both_lines() -> None:
    """Hardening finding 14: a duplicate key in conveyor.yaml was silently taken (the last)."""
    with pytest.raises(
        _yaml.YAMLError, match=r"key 'seed' is given twice \(first on line 2\)"
    ) as err:
        _yaml.load("split:\n  seed: 1\n  test_size: 0.2\n  seed: 2\n")
    assert "line 4" in str(err.value)
