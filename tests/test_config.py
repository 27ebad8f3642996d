"""conveyor.yaml loading: one clear message per problem, naming the file and key path."""

from __future__ import annotations

import json

import pytest

from conveyor._config_values import CronSchedule, GateRule, SearchChoices, SearchRange
from conveyor.config import CandidateConfig, load_config
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


# --- typed values, checked at load (issue 13: nothing parsed late) ------------------------------

SEARCH = VALID.replace(
    "params: {max_depth: 3}}",
    "params: {max_depth: 3}, search: {max_depth: [2, 4], min_samples_leaf: {low: 1, high: 9}}}",
)


def test_search_spaces_are_parsed_at_load_and_dump_as_written(tmp_path):
    cfg = load_config(write(tmp_path, SEARCH))
    assert cfg.training is not None
    search = cfg.training.candidates[1].search
    assert search["max_depth"] == SearchChoices((2, 4))
    assert search["min_samples_leaf"] == SearchRange(1, 9)
    assert search["min_samples_leaf"].integer
    dumped = cfg.training.candidates[1].model_dump()["search"]  # step params, cache keys
    assert dumped == {"max_depth": [2, 4], "min_samples_leaf": {"low": 1, "high": 9}}
    assert (
        CandidateConfig.model_validate(cfg.training.candidates[1].model_dump())
        == (cfg.training.candidates[1])
    )


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ("{C: {low: 1.0, high: 0.01}}", "search.C: low (1.0) is greater than high (0.01)"),
        ("{C: {low: a, high: 1}}", "search.C.low: expected a number, got 'a'"),
        ("{C: {low: 0.1, high: 1, log: yes}}", "search.C.log: expected true or false"),
        ("{C: {low: 0.0, high: 1, step: 0}}", "search.C.step: must be > 0 (got 0)"),
        ("{C: []}", "search.C: empty list of choices"),
        ("{C: 0.1}", "search.C: expected a list of choices or a range"),
        ("{C: {low: 1, high: 2, scale: log}}", "search.C: unknown range key(s) ['scale']"),
    ],
)
def test_a_bad_search_space_fails_at_load_naming_the_key(tmp_path, search, message):
    text = VALID.replace("LogisticRegression}", f"LogisticRegression, search: {search}}}")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert str(info.value).startswith(f"conveyor.yaml: training.candidates[0].{message}")


def test_gate_rules_are_parsed_at_load_and_stay_plain_text(tmp_path):
    cfg = load_config(write(tmp_path, VALID + 'evaluation: {gates: {f1: ">= 0.7", rmse: "< 3"}}\n'))
    f1 = cfg.evaluation.gates["f1"]
    assert isinstance(f1, GateRule) and (f1.op, f1.threshold) == (">=", 0.7)
    assert json.dumps(dict(cfg.evaluation.gates)) == '{"f1": ">= 0.7", "rmse": "< 3"}'
    assert cfg.model_dump(mode="json")["evaluation"]["gates"] == {"f1": ">= 0.7", "rmse": "< 3"}


@pytest.mark.parametrize("rule", ["at least 0.7", "0.7", "=> 0.7"])
def test_a_bad_gate_fails_at_load_naming_the_key(tmp_path, rule):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, VALID + f'evaluation: {{gates: {{f1: "{rule}"}}}}\n'))
    assert str(info.value) == (
        f"conveyor.yaml: evaluation.gates.f1: {rule!r} is not a gate; "
        'write e.g. ">= 0.70" (operators >= > <= < ==)'
    )


def test_a_bad_gate_given_with_set_fails_at_load(tmp_path):
    with pytest.raises(ConfigError, match=r"evaluation\.gates\.f1: 'high' is not a gate"):
        load_config(write(tmp_path, VALID), overrides=["evaluation.gates.f1=high"])


@pytest.mark.parametrize("cron", ["0 3 * * *", "@hourly", "*/5 * * * 1-5"])
def test_a_cron_schedule_is_checked_at_load(tmp_path, cron):
    cfg = load_config(write(tmp_path, VALID + f'monitoring: {{schedule: "{cron}"}}\n'))
    assert isinstance(cfg.monitoring.schedule, CronSchedule) and cfg.monitoring.schedule == cron
    assert cfg.monitoring.schedule.next_after(0.0) > 0.0


@pytest.mark.parametrize("cron", ["every day", "61 * * * *", "* * *"])
def test_a_bad_cron_schedule_fails_at_load(tmp_path, cron):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, VALID + f'monitoring: {{schedule: "{cron}"}}\n'))
    assert str(info.value).startswith(
        f"conveyor.yaml: monitoring.schedule: {cron!r} is not a cron expression"
    )


def _alerts(tmp_path, alerts):
    return load_config(write(tmp_path, VALID + f"monitoring: {{alerts: {alerts}}}\n"))


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ("[{type: log}, {type: webhook}]", "alerts[1].url: webhook needs a url"),
        ('[{type: slack, url: ""}]', "alerts[0].url: slack needs a url"),
        ("[{type: webhook, url: ftp://host/x}]", "alerts[0].url: expected an http:// or https://"),
        ("[{type: webhook, url: hooks.example.com/x}]", "alerts[0].url: expected an http://"),
        ("[{type: webhook, url: 'http:///x'}]", "alerts[0].url: the URL has no host"),
        ("[{type: webhook, url: 'https://h/${'}]", "alerts[0].url: malformed placeholder"),
        ("[{type: slack, url: 'ftp://${HOST}/x'}]", "alerts[0].url: expected an http://"),
    ],
)
def test_a_webhook_without_a_usable_url_fails_at_load(tmp_path, monkeypatch, alerts, message):
    monkeypatch.delenv("HOST", raising=False)
    with pytest.raises(ConfigError) as info:
        _alerts(tmp_path, alerts)
    assert str(info.value).startswith(f"conveyor.yaml: monitoring.{message}")


def test_alert_urls_are_checked_as_the_channel_expands_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK", "https://hooks.example.com/T0/B0/secret")
    monkeypatch.delenv("UNSET_HOOK", raising=False)
    cfg = _alerts(
        tmp_path, "[{type: slack, url: '${HOOK}'}, {type: webhook, url: '${UNSET_HOOK}'}]"
    )
    assert [a.url for a in cfg.monitoring.alerts] == ["${HOOK}", "${UNSET_HOOK}"]  # kept as written
    monkeypatch.setenv("HOOK", "not a url with secret")
    with pytest.raises(ConfigError) as info:
        _alerts(tmp_path, "[{type: slack, url: '${HOOK}'}]")
    assert str(info.value) == (
        "conveyor.yaml: monitoring.alerts[0].url: expected an http:// or https:// URL "
        "after expanding ${VAR}"
    )
    assert "secret" not in str(info.value)  # a webhook URL is a credential: never echoed
