"""The typed stage outputs: one deterministic JSON form, loading from that form (or an instance),
frozen and strict about fields, the model signature's schema version, and the kind -> class
table that is the only way an artifact becomes a contract."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.contracts import (
    CONTRACTS,
    SIGNATURE_VERSION,
    Baseline,
    ColumnSignature,
    Contract,
    DatasetVersion,
    Decision,
    Evaluation,
    GateCheck,
    GateReport,
    LeaderboardRow,
    ModelSignature,
    ModelStatus,
    PartitionedTable,
    Registration,
    TuningOutcome,
    TuningSummary,
    contract_for,
)
from conveyor.store.artifacts.memory import InMemoryArtifactStore


def _dataset() -> DatasetVersion:
    return DatasetVersion(fingerprint="fp", source="s.csv", rows=10, columns=3, schema_hash="sh")


def _evaluation(metrics: dict[str, float] | None = None) -> Evaluation:
    return Evaluation(
        task="classification",
        primary="f1",
        best="rf",
        selected_by="cv",
        positive="yes",
        metrics=metrics if metrics is not None else {"f1": 0.8, "accuracy": 0.9},
        baseline=Baseline(strategy="most_frequent", metrics={"f1": 0.1}),
        leaderboard=[
            LeaderboardRow(candidate="rf", metrics={"f1": 0.8}, cv=0.79, params={"n": 10}),
            LeaderboardRow(candidate="lr", metrics={"f1": 0.7}),
        ],
        test_rows=25,
        signature={"age": "int64", "plan": "object"},
    )


def _decision() -> Decision:
    return Decision(
        promote=True,
        reason="beats the champion",
        metric="f1",
        challenger=0.8,
        champion=0.7,
        champion_version=3,
    )


def _registration() -> Registration:
    return Registration(
        name="churn",
        version=4,
        digest="a" * 64,
        status=ModelStatus.APPROVED,
        reason="beats the champion",
        alias="production",
        decision=_decision(),
    )


def _signature() -> ModelSignature:
    return ModelSignature(
        columns={
            "age": ColumnSignature(dtype="int", trained_dtype="int64", min=0, max=120),
            "plan": ColumnSignature(dtype="category", allowed=["a", "b"], nullable=True),
        },
        task="classification",
        target="churned",
        unused=["id"],
    )


def _gates() -> GateReport:
    return GateReport(
        passed=False,
        results=[
            GateCheck(metric="f1", rule=">= 0.75", value=0.8, passed=True),
            GateCheck(metric="accuracy", rule=">= 0.95", value=0.9, passed=False),
        ],
        failed=["accuracy 0.9 is not >= 0.95"],
    )


def _tuning() -> TuningSummary:
    return TuningSummary(
        metric="f1",
        best_value=0.8,
        best_params={"depth": 3, "loss": "log"},
        trials=20,
        candidate="rf",
    )


ALL = [_dataset, _tuning, _evaluation, _gates, _registration, _signature]


# --- one deterministic JSON form -----------------------------------------------------------------


def test_to_bytes_is_sorted_compact_json() -> None:
    assert _dataset().to_bytes() == (
        b'{"checksum":null,"columns":3,"fingerprint":"fp","rows":10,'
        b'"schema_hash":"sh","source":"s.csv"}'
    )


def test_to_bytes_sorts_nested_keys_too() -> None:
    data = _decision().to_bytes()
    assert data == (
        b'{"challenger":0.8,"champion":0.7,"champion_version":3,"metric":"f1",'
        b'"promote":true,"reason":"beats the champion"}'
    )
    nested = _registration().to_bytes()
    assert nested.startswith(b'{"alias":"production","decision":{"challenger":0.8,')
    assert b'"status":"approved"' in nested


def test_the_same_content_is_the_same_bytes_whatever_the_dict_order() -> None:
    one = _evaluation({"f1": 0.8, "accuracy": 0.9, "auc": 0.85})
    other = _evaluation({"auc": 0.85, "accuracy": 0.9, "f1": 0.8})
    assert list(one.metrics) != list(other.metrics)  # really built in another order
    assert one.to_bytes() == other.to_bytes()
    store = InMemoryArtifactStore()
    assert store.put_bytes(one.to_bytes()) == store.put_bytes(other.to_bytes())


def test_tuning_params_in_another_order_are_the_same_bytes() -> None:
    a = TuningSummary(
        metric="f1", best_value=0.5, best_params={"a": 1, "b": "x"}, trials=2, candidate="rf"
    )
    b = TuningSummary(
        candidate="rf", trials=2, best_params={"b": "x", "a": 1}, best_value=0.5, metric="f1"
    )
    assert a.to_bytes() == b.to_bytes()
    assert a.to_bytes() == (
        b'{"best_params":{"a":1,"b":"x"},"best_value":0.5,"candidate":"rf",'
        b'"metric":"f1","trials":2}'
    )


def test_different_content_is_different_bytes() -> None:
    assert _evaluation({"f1": 0.8}).to_bytes() != _evaluation({"f1": 0.81}).to_bytes()


@pytest.mark.parametrize("make", ALL, ids=lambda f: f.__name__.strip("_"))
def test_to_bytes_is_to_json_and_reads_back_equal(make: Any) -> None:
    value = make()
    data = value.to_bytes()
    assert json.loads(data) == value.to_json()
    assert b", " not in data
    assert b": " not in data
    again = type(value).of(json.loads(data))
    assert again == value
    assert again.to_bytes() == data


def test_an_int_given_for_a_float_field_is_the_same_bytes() -> None:
    as_int = Decision(promote=False, reason="r", metric="f1", challenger=1)
    as_float = Decision(promote=False, reason="r", metric="f1", challenger=1.0)
    assert as_int.to_bytes() == as_float.to_bytes()
    assert b'"challenger":1.0' in as_int.to_bytes()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    with pytest.raises(ValidationError, match="finite"):
        _evaluation({"f1": bad})
    with pytest.raises(ValidationError, match="finite"):
        TuningSummary(metric="f1", best_value=0.5, best_params={"x": bad}, trials=1, candidate="c")


# --- Contract.of ---------------------------------------------------------------------------------


def test_of_an_instance_is_that_instance() -> None:
    evaluation = _evaluation()
    assert Evaluation.of(evaluation) is evaluation


def test_of_the_json_form_builds_the_typed_model() -> None:
    registration = Registration.of(_registration().to_json())
    assert isinstance(registration, Registration)
    assert registration.status is ModelStatus.APPROVED
    assert isinstance(registration.decision, Decision)
    assert registration.decision.champion_version == 3
    assert registration.promoted is True
    assert registration == _registration()


def test_of_the_json_form_of_an_evaluation_types_its_leaderboard() -> None:
    evaluation = Evaluation.of(json.loads(_evaluation().to_bytes()))
    assert [type(r) for r in evaluation.leaderboard] == [LeaderboardRow, LeaderboardRow]
    assert [r.candidate for r in evaluation.leaderboard] == ["rf", "lr"]
    assert evaluation.leaderboard[0].params == {"n": 10}
    assert evaluation.leaderboard[1].params == {}
    assert evaluation.baseline == Baseline(strategy="most_frequent", metrics={"f1": 0.1})
    assert evaluation.score == 0.8


def test_of_another_contract_is_refused() -> None:
    with pytest.raises(ValidationError, match="instance of GateReport"):
        GateReport.of(_decision())


@pytest.mark.parametrize("value", [None, [], "{}", b"{}", 3])
def test_of_something_that_is_no_json_form_is_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        Decision.of(value)


def test_of_a_json_form_missing_a_field_names_it() -> None:
    data = _decision().to_json()
    del data["metric"]
    with pytest.raises(ValidationError) as caught:
        Decision.of(data)
    assert [e["loc"] for e in caught.value.errors()] == [("metric",)]
    assert caught.value.errors()[0]["type"] == "missing"


def test_a_registration_without_an_alias_was_not_promoted() -> None:
    data = {**_registration().to_json(), "alias": None, "status": "rejected"}
    registration = Registration.of(data)
    assert registration.promoted is False
    assert registration.status is ModelStatus.REJECTED


def test_a_registration_with_an_unknown_status_is_refused() -> None:
    with pytest.raises(ValidationError, match="status"):
        Registration.of({**_registration().to_json(), "status": "retired"})


def test_tuning_outcome_drops_the_candidate() -> None:
    outcome = _tuning().outcome()
    assert type(outcome) is TuningOutcome
    assert outcome.to_json() == {
        "metric": "f1",
        "best_value": 0.8,
        "best_params": {"depth": 3, "loss": "log"},
        "trials": 20,
    }


# --- frozen, extra="forbid" ----------------------------------------------------------------------


def test_contracts_are_frozen() -> None:
    evaluation = _evaluation()
    with pytest.raises(ValidationError, match="frozen"):
        evaluation.best = "lr"  # type: ignore[misc]
    assert evaluation.best == "rf"


@pytest.mark.parametrize("make", ALL, ids=lambda f: f.__name__.strip("_"))
def test_an_unknown_field_is_refused(make: Any) -> None:
    value = make()
    with pytest.raises(ValidationError) as caught:
        type(value).of({**value.to_json(), "surprise": 1})
    [error] = caught.value.errors()
    assert (error["type"], error["loc"]) == ("extra_forbidden", ("surprise",))


def test_an_unknown_field_in_a_nested_contract_is_refused() -> None:
    data = _registration().to_json()
    data["decision"] = {**data["decision"], "why": "because"}
    with pytest.raises(ValidationError) as caught:
        Registration.of(data)
    assert [e["loc"] for e in caught.value.errors()] == [("decision", "why")]
    signature = _signature().to_json()
    signature["columns"]["age"]["unit"] = "years"
    with pytest.raises(ValidationError) as caught:
        ModelSignature.of(signature)
    assert [e["loc"] for e in caught.value.errors()] == [("columns", "age", "unit")]


def test_a_renamed_keyword_is_refused_at_construction() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        DatasetVersion(
            fingerprint="fp",
            source="s",
            rows=1,
            columns=1,
            schema_hash="h",
            n_rows=1,  # type: ignore[call-arg]
        )


# --- ModelSignature.schema_version ---------------------------------------------------------------


def test_the_current_signature_version_is_2() -> None:
    assert SIGNATURE_VERSION == 2
    assert ModelSignature.model_fields["schema_version"].default == SIGNATURE_VERSION
    explicit = ModelSignature(columns={"a": ColumnSignature()}, schema_version=SIGNATURE_VERSION)
    assert explicit.to_json()["schema_version"] == SIGNATURE_VERSION


def test_a_signature_built_in_code_is_the_current_version() -> None:
    assert _signature().schema_version == SIGNATURE_VERSION
    assert _signature().to_json()["schema_version"] == SIGNATURE_VERSION
    assert ModelSignature.of(_signature().to_json()).schema_version == SIGNATURE_VERSION


def test_a_stored_signature_without_a_version_is_version_1() -> None:
    stored = {
        "columns": {"age": {"dtype": "int", "trained_dtype": "int64"}},
        "task": "regression",
        "target": "price",
    }
    signature = ModelSignature.stored(stored)
    assert signature.schema_version == 1
    assert signature.task == "regression"
    assert signature.target == "price"
    assert signature.columns["age"] == ColumnSignature(dtype="int", trained_dtype="int64")
    assert signature.unused == []
    assert "schema_version" not in stored  # the stored data is not changed


def test_a_version_1_signature_with_a_null_task_is_a_classification() -> None:
    signature = ModelSignature.stored({"columns": {"a": {}}, "task": None})
    assert (signature.schema_version, signature.task) == (1, "classification")


def test_a_null_task_is_refused_in_a_versioned_signature() -> None:
    with pytest.raises(ValidationError) as caught:
        ModelSignature.of({"columns": {"a": {}}, "task": None, "schema_version": 2})
    assert [e["loc"] for e in caught.value.errors()] == [("task",)]


@pytest.mark.parametrize("version", [SIGNATURE_VERSION + 1, 99])
def test_a_newer_signature_version_is_refused_with_upgrade_advice(version: int) -> None:
    with pytest.raises(ValidationError) as caught:
        ModelSignature.of({"columns": {"a": {}}, "schema_version": version})
    message = str(caught.value)
    assert f"signature schema_version {version} is newer than this conveyor understands" in message
    assert f"({SIGNATURE_VERSION}); upgrade conveyor" in message


@pytest.mark.parametrize("version", [1, 2])
def test_every_known_signature_version_loads(version: int) -> None:
    signature = ModelSignature.of({"columns": {"a": {}}, "schema_version": version})
    assert signature.schema_version == version


@pytest.mark.parametrize("version", [0, -1])
def test_a_signature_version_below_1_is_refused(version: int) -> None:
    with pytest.raises(ValidationError, match=f"schema_version {version}"):
        ModelSignature.of({"columns": {"a": {}}, "schema_version": version})


def test_a_signature_version_below_1_is_not_called_newer() -> None:
    with pytest.raises(ValidationError) as caught:
        ModelSignature.of({"columns": {"a": {}}, "schema_version": 0})
    assert "upgrade conveyor" not in str(caught.value)


def test_column_signature_defaults() -> None:
    assert ColumnSignature().to_json() == {
        "dtype": None,
        "trained_dtype": "object",
        "nullable": False,
        "allowed": None,
        "min": None,
        "max": None,
        "format": None,
    }


# --- CONTRACTS / contract_for --------------------------------------------------------------------


def test_contracts_maps_each_kind_to_its_class_and_nothing_else() -> None:
    assert CONTRACTS == {
        "contract:dataset": DatasetVersion,
        "contract:tuning": TuningSummary,
        "contract:evaluation": Evaluation,
        "contract:gates": GateReport,
        "contract:registration": Registration,
        "contract:signature": ModelSignature,
        "contract:partitions": PartitionedTable,
    }
    for kind, cls in CONTRACTS.items():
        assert cls.KIND == kind
        assert issubclass(cls, Contract)


@pytest.mark.parametrize("kind", sorted(CONTRACTS))
def test_contract_for_a_kind_is_its_class(kind: str) -> None:
    assert contract_for(kind) is CONTRACTS[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "json",
        "joblib",
        "parquet",
        "contract:decision",
        "contract:Evaluation",
        "contract:",
        "Evaluation",
        "conveyor.contracts.Evaluation",
        "conveyor.contracts:Decision",
        "",
    ],
)
def test_contract_for_anything_else_is_none(kind: str) -> None:
    assert contract_for(kind) is None


@pytest.mark.parametrize("make", ALL, ids=lambda f: f.__name__.strip("_"))
def test_every_stored_contract_loads_back_through_its_kind(make: Any) -> None:
    value = make()
    cls = contract_for(value.KIND)
    assert cls is type(value)
    assert cls.of(json.loads(value.to_bytes())) == value


def test_a_signature_keeps_the_training_order_its_json_keys_lose() -> None:
    columns = {n: ColumnSignature(trained_dtype="int64") for n in ("zeta", "alpha", "mid")}
    signature = ModelSignature(columns=columns, order=["zeta", "alpha", "mid"])
    back = ModelSignature.of(json.loads(signature.to_bytes()))
    assert list(json.loads(signature.to_bytes())["columns"]) == ["alpha", "mid", "zeta"]
    assert [name for name, _ in back.ordered()] == ["zeta", "alpha", "mid"]
    unordered = ModelSignature(columns=columns)  # stored before `order` existed
    assert [name for name, _ in unordered.ordered()] == ["zeta", "alpha", "mid"]


@pytest.mark.parametrize("order", [["zeta", "alpha"], ["zeta", "alpha", "mid", "mid"], ["x"]])
def test_a_signature_order_must_name_every_column_once(order: list[str]) -> None:
    columns = {n: ColumnSignature() for n in ("zeta", "alpha", "mid")}
    with pytest.raises(ValidationError, match="order must name every column exactly once"):
        ModelSignature(columns=columns, order=order)
