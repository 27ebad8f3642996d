"""The typed data that crosses stage boundaries: what one stage writes and another reads.

Every step output of the built-in lines that another stage reads (the dataset version, the
tuning summary, the evaluation, the gate report, the registration) and the model signature the
registry persists and serving validates against are frozen models here, so a renamed field is a
type error rather than a ``KeyError`` in lineage or serving at run time.

Each model has one deterministic JSON form (:meth:`Contract.to_json`: keys sorted, no
whitespace, no NaN), so the same content is always the same artifact bytes and address; the
artifact store keeps the model's :attr:`Contract.KIND` as the artifact's kind and gives the
typed model back on load (:func:`contract_for`). A contract is never built from code named in
data: only the classes listed in :data:`CONTRACTS` can be loaded.

The model lifecycle's statuses live here too (:class:`ModelStatus`), because the store persists
them and the registry decides them; the transitions are in ``conveyor.registry.governance``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

Task = Literal["classification", "regression"]
Scalar = str | int | float | bool | None
"""A JSON scalar: a class label, a parameter value."""

REFERENCE_PROFILE_TAG = "reference_profile"
"""Model version tag: digest of the reference profile drift checks compare against."""
CANDIDATE_TAG = "candidate"
"""Model version tag: which configured candidate the version is."""


class ModelStatus(StrEnum):
    """Where a model version is in its lifecycle (transitions: ``registry.governance``)."""

    CANDIDATE = "candidate"  # registered, waiting for a decision
    APPROVED = "approved"  # may hold an alias
    REJECTED = "rejected"  # failed gates or lost to the champion
    ARCHIVED = "archived"  # retired


class Contract(BaseModel):
    """Base of every typed stage output: frozen, strict about fields, one JSON form."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    KIND: ClassVar[str]
    """The artifact kind under which the JSON form is stored (``contract:<name>``)."""

    @classmethod
    def of(cls, value: Any) -> Self:
        """``value`` as this contract: already one, or its JSON form (e.g. an artifact written
        before contracts had their own artifact kind).

        Raises:
            pydantic.ValidationError: ``value`` is neither.
        """
        return value if isinstance(value, cls) else cls.model_validate(value)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able data (what the artifact holds)."""
        return self.model_dump(mode="json")

    def to_bytes(self) -> bytes:
        """The deterministic bytes of the artifact: sorted keys, no whitespace."""
        return json.dumps(
            self.to_json(), sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode()


class DatasetVersion(Contract):
    """What the ingest step read: the fingerprint that names the data, and where it came from."""

    KIND: ClassVar[str] = "contract:dataset"

    fingerprint: str
    source: str
    rows: int
    columns: int
    schema_hash: str
    checksum: str | None = None


class TablePart(BaseModel):
    """One partition of a :class:`PartitionedTable`: a Parquet artifact and its row count."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    digest: str
    rows: int = Field(ge=0)


class PartitionedTable(Contract):
    """A table too big for one process, kept as Parquet partitions in the artifact store.

    The partitions are read one at a time (on Dask workers or a thread pool) and cast to
    ``dtypes`` on load, so every partition has the table's types whatever its own file held.
    """

    KIND: ClassVar[str] = "contract:partitions"

    parts: list[TablePart]
    columns: list[str]
    dtypes: list[str]

    @property
    def rows(self) -> int:
        """Rows over all partitions."""
        return sum(p.rows for p in self.parts)


class TuningOutcome(Contract):
    """What a hyper-parameter search found: the best score and parameters, after N trials."""

    metric: str
    best_value: float
    best_params: dict[str, Scalar]
    trials: int


class TuningSummary(TuningOutcome):
    """The tune step's output: one candidate's search."""

    KIND: ClassVar[str] = "contract:tuning"

    candidate: str

    def outcome(self) -> TuningOutcome:
        """The search's outcome without the candidate's name (as the leaderboard shows it)."""
        return TuningOutcome.model_validate(self.model_dump(exclude={"candidate"}))


class Baseline(Contract):
    """The dummy model every candidate must beat, and its scores on the test split."""

    strategy: str
    metrics: dict[str, float]


class LeaderboardRow(Contract):
    """One candidate's scores, as trained."""

    candidate: str
    metrics: dict[str, float]
    cv: float | None = None
    params: dict[str, Scalar] = Field(default_factory=dict)
    tuning: TuningOutcome | None = None


class Evaluation(Contract):
    """The evaluate step's verdict: the chosen candidate, its test metrics, the leaderboard."""

    KIND: ClassVar[str] = "contract:evaluation"

    task: Task
    primary: str
    best: str
    selected_by: str
    positive: Scalar = None
    metrics: dict[str, float]
    baseline: Baseline | None = None
    leaderboard: list[LeaderboardRow]
    test_rows: int
    signature: dict[str, str]
    """Input column -> pandas dtype, as trained."""
    inputs: list[str] = Field(default_factory=list)
    """The input columns in training order (the JSON form sorts ``signature``'s keys)."""

    @property
    def score(self) -> float:
        """The chosen model's primary metric on the test split."""
        return self.metrics[self.primary]


class GateCheck(Contract):
    """One quality gate checked against a value."""

    metric: str
    rule: str
    value: float
    passed: bool

    def describe(self) -> str:
        """``f1 0.612 (needs >= 0.7)``."""
        return f"{self.metric} {self.value:.4g} (needs {self.rule})"


class GateReport(Contract):
    """The gate step's outcome: every check, and the failed ones described for people."""

    KIND: ClassVar[str] = "contract:gates"

    passed: bool
    results: list[GateCheck]
    failed: list[str]


class Decision(Contract):
    """Champion/challenger: whether the challenger should replace the champion, and why."""

    promote: bool
    reason: str
    metric: str
    challenger: float
    champion: float | None = None
    champion_version: int | None = None


class Registration(Contract):
    """The register step's outcome: the model version, its status and the decision behind it."""

    KIND: ClassVar[str] = "contract:registration"

    name: str
    version: int
    digest: str
    status: ModelStatus
    reason: str
    alias: str | None = None
    decision: Decision

    @property
    def promoted(self) -> bool:
        """Whether the version was moved onto the alias."""
        return self.alias is not None


SIGNATURE_VERSION = 2
"""Version 1: stored before the field existed (same shape). Version 2: ``schema_version``."""


class ColumnSignature(Contract):
    """One input column of a model: its dtype as trained and what the data contract allows."""

    dtype: str | None = None
    """The schema.yaml dtype (int, float, category, ...); None: derive from ``trained_dtype``."""
    trained_dtype: str = "object"
    nullable: bool = False
    allowed: list[Scalar] | None = None
    min: int | float | None = None
    max: int | float | None = None
    format: str | None = None


class ModelSignature(Contract):
    """A model version's inputs, task and target, persisted with the version and served by."""

    KIND: ClassVar[str] = "contract:signature"

    schema_version: int = SIGNATURE_VERSION
    columns: dict[str, ColumnSignature]
    task: Task = "classification"
    target: str | None = None
    unused: list[str] = Field(default_factory=list)
    """Columns the model drops (ids): optional in requests."""
    order: list[str] = Field(default_factory=list)
    """The input columns in training order, which a CSV row without a header follows (the
    JSON form sorts ``columns``' keys); empty: the order of ``columns``."""

    def ordered(self) -> list[tuple[str, ColumnSignature]]:
        """The columns in training order."""
        names = self.order or list(self.columns)
        return [(name, self.columns[name]) for name in names]

    @classmethod
    def stored(cls, value: Any) -> ModelSignature:
        """A signature as the registry persisted it: one stored before ``schema_version``
        existed is version 1 (same shape, ``task`` and ``unused`` possibly null).

        Raises:
            pydantic.ValidationError: not a signature this conveyor can read.
        """
        if isinstance(value, dict) and "schema_version" not in value:
            nulls = [k for k in ("task", "unused") if k in value and value[k] is None]
            value = {k: v for k, v in value.items() if k not in nulls} | {"schema_version": 1}
        return cls.of(value)

    @model_validator(mode="after")
    def _order_names_every_column(self) -> ModelSignature:
        if self.order and sorted(self.order) != sorted(self.columns):
            raise ValueError("order must name every column exactly once")
        return self

    @model_validator(mode="after")
    def _known_version(self) -> ModelSignature:
        if self.schema_version > SIGNATURE_VERSION:
            raise ValueError(
                f"signature schema_version {self.schema_version} is newer than this conveyor "
                f"understands ({SIGNATURE_VERSION}); upgrade conveyor"
            )
        if self.schema_version < 1:
            raise ValueError(f"signature schema_version {self.schema_version} does not exist")
        return self


@runtime_checkable
class StepRecorder(Protocol):
    """What a step may record in the run's metadata store beyond metrics and attachments.

    Shared by the pipeline layer (``StepContext.metadata``) and the store, whose run role
    (``conveyor.store.metadata.RunStore``) extends it. The store behind a step fills every role
    (a built-in step that needs more, such as the register step, asks for that role explicitly).
    """

    def record_dataset(
        self,
        fingerprint: str,
        *,
        source: str,
        n_rows: int,
        n_columns: int,
        schema_hash: str | None = None,
        digest: str | None = None,
        run_id: str | None = None,
    ) -> None:
        """Record a dataset version the run read."""
        ...

    def log_trials(
        self, run_id: str, step_name: str, candidate: str, trials: Iterable[Mapping[str, Any]]
    ) -> None:
        """Record hyper-parameter search trials."""
        ...


CONTRACTS: dict[str, type[Contract]] = {
    c.KIND: c
    for c in (
        DatasetVersion,
        TuningSummary,
        Evaluation,
        GateReport,
        Registration,
        ModelSignature,
        PartitionedTable,
    )
}
"""Artifact kind -> the contract it loads as (the only classes an artifact can become)."""


def contract_for(kind: str) -> type[Contract] | None:
    """The contract class stored under artifact ``kind``, or None when ``kind`` is no contract."""
    return CONTRACTS.get(kind)
