"""conveyor.yaml as pydantic models, loaded with errors that name the file and the key path."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from conveyor import _plugins, _yaml
from conveyor._config_values import (
    URL_CHANNELS,
    CronSchedule,
    GateRule,
    SearchParam,
    ValueProblem,
    check_alert_url,
    pydantic_error,
)
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

CONFIG_FILE = "conveyor.yaml"
METADATA_URL_ENV = "CONVEYOR_METADATA_URL"
ARTIFACTS_URI_ENV = "CONVEYOR_ARTIFACTS_URI"


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # model names and aliases


def name_problem(kind: str, value: str) -> str | None:
    """Why ``value`` cannot be a model name or alias (``@``, ``:``, spaces, newlines break
    ``NAME@ALIAS`` references and history lines), or None when it can."""
    if _NAME.match(value):
        return None
    return (
        f"{kind} {value!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter "
        "or digit"
    )


def _name(value: str) -> str:
    problem = name_problem("name", value)
    if problem is not None:
        raise ValueError(problem)
    return value


Name = Annotated[str, AfterValidator(_name)]


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class StoreConfig(_Section):
    """Where runs, models and artifacts live. Relative paths are relative to the project folder."""

    metadata: str = "sqlite:///.conveyor/conveyor.db"
    artifacts: str = ".conveyor/artifacts"
    storage_options: dict[str, Any] = Field(default_factory=dict)


class SourceConfig(_Section):
    """Where the training data comes from."""

    # csv | parquet | sql | mongodb, or a plugin registered in the group conveyor.sources
    type: Annotated[str, AfterValidator(_plugins.check_name(_plugins.SOURCES))] = "csv"
    path: str | None = None
    url: str | None = None
    query: str | None = None
    table: str | None = None
    uri: str | None = None
    database: str | None = None
    collection: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    # sql with data.partitioned: read in ranges of this numeric column (one query a range)
    partition_on: str | None = None
    partitions: int | None = Field(None, ge=1)  # ranges; default: one per 500,000 rows

    @model_validator(mode="after")
    def _ranges_need_sql(self) -> SourceConfig:
        if (self.partition_on or self.partitions) and self.type != "sql":
            raise ValueError("partition_on/partitions: only a sql source is read in ranges")
        return self


class SplitConfig(_Section):
    """Train/test (and optional validation) split."""

    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    validation_size: float = Field(0.0, ge=0.0, lt=1.0)
    stratify: bool = True
    seed: int = 42

    @model_validator(mode="after")
    def _sizes(self) -> SplitConfig:
        if self.test_size + self.validation_size >= 1.0:
            raise ValueError("test_size + validation_size must leave rows to train on (< 1)")
        return self


class VersionConfig(_Section):
    """How dataset versions are fingerprinted."""

    ignore_row_order: bool = False


class DataConfig(_Section):
    """The data section: source, contract, target and split."""

    source: SourceConfig
    schema_file: str | None = Field(None, alias="schema")
    target: str
    positive_class: str | int | float | bool | None = None  # matched to the classes as text
    split: SplitConfig = Field(default_factory=SplitConfig)
    version: VersionConfig = Field(default_factory=VersionConfig)
    # partition by partition, never the whole table in one process (see lines/_partitioned.py)
    partitioned: bool = False
    sample_rows: int = Field(500_000, ge=100)  # partitioned: rows kept for in-memory fits


class NumericFeatures(_Section):
    """How numeric columns are prepared."""

    impute: Literal["median", "mean", "most_frequent", "none"] = "median"
    scale: Literal["standard", "minmax", "robust", "none"] = "standard"


class CategoricalFeatures(_Section):
    """How categorical columns are prepared."""

    impute: Literal["most_frequent", "constant", "none"] = "most_frequent"
    encode: Literal["onehot", "ordinal"] = "onehot"
    # one-hot only: categories rarer than this (a count, or a share if < 1) share one column
    min_frequency: float | None = Field(None, gt=0)
    max_categories: int | None = Field(None, ge=2)  # one-hot columns per feature, at most


DatePart = Literal["year", "month", "day", "dayofweek", "dayofyear", "hour", "minute"]
_DATE_PARTS: list[DatePart] = ["year", "month", "day", "dayofweek"]


class DatetimeFeatures(_Section):
    """How datetime columns (schema dtype ``datetime``) become numbers the model can use."""

    parts: list[DatePart] = Field(default_factory=lambda: list(_DATE_PARTS), min_length=1)


class FeaturesConfig(_Section):
    """Preprocessing, saved with the model so inference does what training did."""

    drop: list[str] = Field(default_factory=list)
    derive: list[str] = Field(default_factory=list)  # "module:function", frame -> frame
    numeric: NumericFeatures = Field(default_factory=NumericFeatures)
    categorical: CategoricalFeatures = Field(default_factory=CategoricalFeatures)
    datetime: DatetimeFeatures = Field(default_factory=DatetimeFeatures)


class CandidateConfig(_Section):
    """One estimator to try, by dotted import path."""

    name: str
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, SearchParam] = Field(default_factory=dict)  # parsed at load


class TuningConfig(_Section):
    """Hyper-parameter search (Optuna, seeded TPE, cross-validated, median pruning)."""

    trials: int = Field(20, ge=1)
    cv: int = Field(3, ge=2)
    metric: str | None = None  # default: evaluation.primary
    workers: int = Field(1, ge=1, le=256)  # trials evaluated at once (processes, or Dask tasks)
    timeout: float | None = Field(None, gt=0)  # seconds per candidate; None: run all trials


class TrainingConfig(_Section):
    """Which estimators to train."""

    task: Literal["classification", "regression"] | None = None
    candidates: list[CandidateConfig] = Field(min_length=1)
    tuning: TuningConfig | None = None


class ImportanceConfig(_Section):
    """Permutation feature importance in the report."""

    repeats: int = Field(5, ge=1)
    max_rows: int = Field(2000, ge=10)


class EvaluationConfig(_Section):
    """Metrics, gates and the champion/challenger margin."""

    primary: str = "f1"
    gates: dict[str, GateRule] = Field(default_factory=dict)  # metric: ">= 0.7"
    beat_baseline: bool = True  # a model no better than the dummy baseline is rejected
    select: Literal["cv", "test"] = "cv"  # how the best candidate is chosen (cv: no test peeking)
    min_improvement: float = 0.0
    importance: ImportanceConfig = Field(default_factory=ImportanceConfig)


class PromoteConfig(_Section):
    """Promotion policy."""

    alias: Name = "production"
    require_approval: bool = False


class RegistryConfig(_Section):
    """Model registry settings."""

    model: Name
    promote: PromoteConfig = Field(default_factory=PromoteConfig)


class ServingConfig(_Section):
    """Online serving settings (``conveyor serve`` flags override them)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=256)
    auth: Literal["api_key", "none"] = "api_key"
    public_docs: bool = False  # /docs and /openapi.json readable without a key
    log_predictions: bool = True
    unknown_categories: Literal["reject", "unknown"] = "reject"
    max_records: int = Field(1000, ge=1, le=1_000_000)  # per JSON request
    max_body_mb: float = Field(8, gt=0, le=1024)  # JSON request bodies
    max_file_mb: float = Field(256, gt=0, le=64 * 1024)  # uploads to /v1/predict/file
    max_file_rows: int = Field(200_000, ge=1, le=100_000_000)  # rows per upload


class DriftColumnConfig(_Section):
    """Per-column overrides of the drift rule."""

    threshold: float | None = Field(None, gt=0)
    p_value: float | None = Field(None, gt=0, lt=1)
    method: Literal["auto", "ks", "wasserstein", "chi2", "jensenshannon"] = "auto"
    ignore: bool = False


class DriftConfig(_Section):
    """Drift thresholds (see conveyor.monitoring.drift for the rule)."""

    threshold: float = Field(0.1, gt=0)  # distances (Wasserstein / std, Jensen-Shannon)
    p_value: float = Field(0.05, gt=0, lt=1)  # tests (KS, chi-square), after BH correction
    share: float = Field(0.5, gt=0.0, le=1.0)  # dataset drift: share of drifted columns
    min_rows: int = Field(100, ge=1)  # fewer current rows: "not enough data"
    small_sample: int = Field(1000, ge=1)  # at or below: tests; above: distances
    missing_delta: float = Field(0.05, ge=0, le=1)
    columns: dict[str, DriftColumnConfig] = Field(default_factory=dict)


class AlertConfig(_Section):
    """One alert channel."""

    # log | webhook | slack, or a plugin registered in the group conveyor.alerts
    type: Annotated[str, AfterValidator(_plugins.check_name(_plugins.ALERTS))] = "log"
    url: str | None = None  # webhook / slack: where to POST (${VAR} expanded from the env)
    timeout: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0)
    on: Literal["column", "dataset", "prediction", "serving", "any"] = "any"
    options: dict[str, Any] = Field(default_factory=dict)  # a plugin channel's own settings

    @model_validator(mode="after")
    def _plugin_options(self) -> AlertConfig:
        if self.options and self.type in _plugins.ALERTS.builtins:
            raise ValueError(f"options: only plugin channels take options, not {self.type}")
        return self


class RetrainConfig(_Section):
    """When monitoring may start the train line (conveyor watch)."""

    on_drift: bool = False
    on_new_data: bool = False
    persist: int = Field(2, ge=1)  # drift must persist this many consecutive checks
    cooldown_minutes: float = Field(60, ge=0)  # no retrain sooner than this after the last


class MonitoringConfig(_Section):
    """Drift monitoring, alerts and retraining triggers."""

    drift: DriftConfig = Field(default_factory=DriftConfig)
    window_hours: float = Field(24, gt=0)  # current data: the prediction log of this window
    schedule: CronSchedule | None = None  # cron: retrain on a schedule (conveyor watch)
    interval_seconds: float = Field(60, gt=0)  # conveyor watch: time between cycles
    alerts: list[AlertConfig] = Field(default_factory=lambda: [AlertConfig()])
    alert_cooldown_minutes: float = Field(60, ge=0)  # the same alert at most once per cooldown
    id_column: str | None = None  # joins --labels to logged predictions (else request_id)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)

    @field_validator("alerts")
    @classmethod
    def _alert_urls(cls, alerts: list[AlertConfig]) -> list[AlertConfig]:
        """A webhook or slack channel needs a usable URL now, not at the first alert."""
        for i, alert in enumerate(alerts):
            if alert.type not in URL_CHANNELS:
                continue
            try:
                check_alert_url(alert.type, alert.url, os.environ)
            except ValueProblem as exc:
                raise pydantic_error(exc, at=f"[{i}].url") from None
        return alerts


class ExecutorConfig(_Section):
    """Where steps execute: in this process, or on a Dask cluster."""

    # local | dask, or a plugin registered in the group conveyor.executors
    type: Annotated[str, AfterValidator(_plugins.check_name(_plugins.EXECUTORS))] = "local"
    address: str | None = None
    workers: int | None = Field(None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)  # a plugin executor's own settings

    @model_validator(mode="after")
    def _plugin_options(self) -> ExecutorConfig:
        if self.options and self.type in _plugins.EXECUTORS.builtins:
            raise ValueError(f"options: only plugin executors take options, not {self.type}")
        return self


class ProjectConfig(_Section):
    """The whole of conveyor.yaml."""

    project: str
    store: StoreConfig = Field(default_factory=StoreConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    pipelines: dict[str, str] = Field(default_factory=dict)
    data: DataConfig | None = None
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    training: TrainingConfig | None = None
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    registry: RegistryConfig | None = None
    serving: ServingConfig = Field(default_factory=ServingConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)


def load_config(path: str | Path, *, overrides: Iterable[str] = ()) -> ProjectConfig:
    """Read, override and validate a conveyor.yaml.

    YAML is read with YAML 1.2 scalars (:mod:`conveyor._yaml`): ``positive_class: yes`` is the
    text ``yes``, not ``True``.

    Args:
        path: the conveyor.yaml file, or the project folder holding it.
        overrides: ``key.path=value`` strings (``--set``); values are parsed as YAML scalars.

    Returns:
        The validated config, with ``CONVEYOR_METADATA_URL`` / ``CONVEYOR_ARTIFACTS_URI`` applied.

    Raises:
        ConfigError: missing/unreadable file, bad YAML, or invalid content; one message naming
            the file and every offending key path.
    """
    file = Path(path)
    if file.is_dir():
        file = file / CONFIG_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: file not found (run `conveyor init` to create one)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from exc
    try:
        raw = _yaml.load(text)
    except _yaml.YAMLError as exc:
        raise ConfigError(f"{file}: invalid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping at the top level, got {type(raw).__name__}")
    for item in overrides:
        apply_override(raw, item, source=str(file))
    _apply_env(raw)
    return parse_config(raw, source=file.name)


def parse_config(raw: Mapping[str, Any], *, source: str = CONFIG_FILE) -> ProjectConfig:
    """Validate an already-parsed config mapping; errors are prefixed with ``source``."""
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


_M = TypeVar("_M", bound=BaseModel)


def validate_section(model: type[_M], values: Mapping[str, Any], *, source: str) -> _M:
    """``values`` as a ``model`` (a config section, or settings derived from one), with the
    errors conveyor.yaml gets.

    Raises:
        ConfigError: invalid values; one line per problem, naming ``source`` and the field.
    """
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def with_overrides(section: _M, changes: Mapping[str, Any], *, source: str) -> _M:
    """A copy of ``section`` with ``changes`` (e.g. command-line flags), validated: unlike
    ``model_copy(update=...)``, a value out of the bounds conveyor.yaml has is an error.

    Raises:
        ConfigError: a changed value is invalid; the message names ``source`` and the field.
    """
    if not changes:
        return section
    return validate_section(type(section), section.model_dump() | dict(changes), source=source)


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: ``source: key.path[i].field: what is wrong``."""
    return "\n".join(
        f"{source}: {_loc(err['loc'])}{_at(err)}: {_message(err)}" for err in exc.errors()
    )


def apply_override(raw: dict[str, Any], item: str, *, source: str = "--set") -> None:
    """Set ``a.b.c=value`` in a raw config mapping, creating sections as needed."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{source}: override {item!r} must look like key.path=value")
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: override {item!r}: {part} is not a section")
        node = child
    try:
        node[parts[-1]] = _yaml.load(value)
    except _yaml.YAMLError:
        node[parts[-1]] = value  # not YAML (e.g. ">= 0.9"): take it as the plain string


def _apply_env(raw: dict[str, Any]) -> None:
    store = raw.setdefault("store", {})
    if not isinstance(store, dict):
        return  # reported by validation
    if url := os.environ.get(METADATA_URL_ENV):
        store["metadata"] = url
    if uri := os.environ.get(ARTIFACTS_URI_ENV):
        store["artifacts"] = uri


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _at(err: Any) -> str:
    """The sub-key a typed value's parser named (``.low`` of a search range), if any."""
    return str(err.get("ctx", {}).get("at", "")) if err["type"] == "conveyor_value" else ""


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "field required"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]
