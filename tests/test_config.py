"""conveyor.yaml loading: one clear message per problem, naming the file and key path."""

from __future__ import annotations

import pytest

from conveyor.config import load_config
from conveyor.errors import ConfigError

VALID = """\
project: demo
data:
  source: {type: csv, path: data.csv}
  target: y
training:
  candidates:
    - {name: a, estimator: sklearn.linear_model.LogisticRegression}
    - {name: b, estimator: sklearn.tree.DecisionTreeClassifier, params: {max_depth: 3}}
registry: {model: m}
"""


def write(tmp_path, text):
    path = tmp_path / "conveyor.yaml"
    path.write_text(text)
    return path


def test_valid_config_loads_with_defaults(tmp_path):
    cfg = load_config(write(tmp_path, VALID))
    assert cfg.project == "demo"
    assert cfg.store.metadata == "sqlite:///.conveyor/conveyor.db"
    assert cfg.data is not None and cfg.data.split.test_size == 0.2
    assert cfg.training is not None and cfg.training.candidates[1].params == {"max_depth": 3}


def test_folder_path_finds_conveyor_yaml(tmp_path):
    write(tmp_path, VALID)
    assert load_config(tmp_path).project == "demo"


def test_missing_field_names_file_and_key_path(tmp_path):
    text = VALID.replace(", estimator: sklearn.tree.DecisionTreeClassifier", "")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert str(info.value) == "conveyor.yaml: training.candidates[1].estimator: field required"


def test_unknown_key_and_wrong_type_are_all_reported(tmp_path):
    text = VALID.replace("project: demo", "project: demo\ntrainng: {}") + "serving: {port: many}\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    lines = str(info.value).splitlines()
    assert "conveyor.yaml: trainng: unknown key" in lines
    assert any(line.startswith("conveyor.yaml: serving.port: ") for line in lines)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="conveyor.yaml: file not found"):
        load_config(tmp_path / "conveyor.yaml")


def test_invalid_yaml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="conveyor.yaml: invalid YAML"):
        load_config(write(tmp_path, "project: [unclosed"))


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping at the top level, got list"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_set_overrides_are_parsed_as_yaml(tmp_path):
    cfg = load_config(
        write(tmp_path, VALID), overrides=["data.split.test_size=0.3", "evaluation.primary=roc_auc"]
    )
    assert cfg.data is not None and cfg.data.split.test_size == 0.3
    assert cfg.evaluation.primary == "roc_auc"


def test_bad_override_value_is_reported_like_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.split\.test_size: input should be less than 1"):
        load_config(write(tmp_path, VALID), overrides=["data.split.test_size=2"])


@pytest.mark.parametrize("item", ["novalue", "=3"])
def test_malformed_override(tmp_path, item):
    with pytest.raises(ConfigError, match="must look like key.path=value"):
        load_config(write(tmp_path, VALID), overrides=[item])


def test_environment_overrides_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVEYOR_METADATA_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("CONVEYOR_ARTIFACTS_URI", "s3://bucket/prefix")
    cfg = load_config(write(tmp_path, VALID))
    assert cfg.store.metadata == "postgresql+psycopg://u@h/db"
    assert cfg.store.artifacts == "s3://bucket/prefix"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("serving.max_body_mb=.inf", "serving.max_body_mb: input should be a finite number"),
        ("serving.max_records=1e32", "serving.max_records:"),
        ("serving.max_file_mb=.nan", "serving.max_file_mb: input should be a finite number"),
        ("monitoring.drift.share=.nan", "monitoring.drift.share: input should be a finite number"),
        ("serving.workers=100000", "serving.workers: input should be less than or equal to 256"),
    ],
)
def test_unbounded_numbers_are_config_errors_not_tracebacks(tmp_path, override, message):
    """Hardening finding 14: `max_body_mb: .inf` and `max_records: 1e32` crashed the server."""
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, VALID), overrides=[override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("registry.model=fraud@eu", "registry.model"),
        ("registry.model=fraud:2", "registry.model"),
        ("registry.promote.alias=prod uction", "registry.promote.alias"),
        ("registry.promote.alias=''", "registry.promote.alias"),
    ],
)
def test_model_and_alias_names_are_checked_at_load(tmp_path, override, key):
    """Hardening finding 15: `registry.model: fraud@eu` registered but could never be resolved."""
    with pytest.raises(ConfigError, match=f"conveyor.yaml: {key}: .* use 1-100 letters, digits"):
        load_config(write(tmp_path, VALID), overrides=[override])


def test_a_key_given_twice_in_conveyor_yaml_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="conveyor.yaml: invalid YAML: key 'registry' is given"):
        load_config(write(tmp_path, VALID + "registry: {model: other}\n"))
