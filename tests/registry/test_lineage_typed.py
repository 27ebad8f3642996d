"""Typed lineage: a model version back to its dataset, run, candidates, trials, gates, decision
and alias history (:class:`ModelLineage`), and a dataset version forward to its models
(:class:`DatasetLineage`), both with a plain ``to_json()``.

Runs are recorded by hand through the store API, with the train line's step outputs stored as
contract objects and as the plain JSON dicts older conveyor versions wrote: both read back."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from conveyor.contracts import (
    Baseline,
    Decision,
    Evaluation,
    GateCheck,
    GateReport,
    LeaderboardRow,
    ModelStatus,
    Registration,
)
from conveyor.errors import ModelNotFoundError, NotFoundError
from conveyor.registry import governance
from conveyor.registry.lineage import (
    CandidateLine,
    DatasetLineage,
    DatasetModel,
    ModelLineage,
    TrialCounts,
    dataset_lineage,
    model_lineage,
)
from conveyor.store.artifacts.memory import InMemoryArtifactStore
from conveyor.store.metadata import ArtifactRef, RunStatus, open_metadata_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conveyor.store.metadata import SqlMetadataStore

NAME = "churn"
FP = "ab12" + "0" * 60
OTHER_FP = "ab34" + "1" * 60
STEPS = ["ingest", "tune_rf", "evaluate", "gate", "register"]


@pytest.fixture
def store() -> Iterator[SqlMetadataStore]:
    metadata = open_metadata_store("sqlite://")
    yield metadata
    metadata.close()


@pytest.fixture
def artifacts() -> InMemoryArtifactStore:
    return InMemoryArtifactStore()


def _evaluation(best: str = "rf") -> Evaluation:
    return Evaluation(
        task="classification",
        primary="f1",
        best=best,
        selected_by="5-fold cross-validation on the training split",
        positive="yes",
        metrics={"f1": 0.81, "accuracy": 0.9},
        baseline=Baseline(strategy="most_frequent", metrics={"f1": 0.2, "accuracy": 0.6}),
        leaderboard=[
            LeaderboardRow(candidate="rf", metrics={"f1": 0.81}, cv=0.8, params={"depth": 4}),
            LeaderboardRow(candidate="lr", metrics={"f1": 0.74}, cv=0.73),
        ],
        test_rows=40,
        signature={"age": "int64", "plan": "object"},
    )


def _gates() -> GateReport:
    return GateReport(
        passed=True,
        results=[
            GateCheck(metric="f1", rule=">= 0.7", value=0.81, passed=True),
            GateCheck(
                metric="f1", rule="> baseline (most frequent class)", value=0.81, passed=True
            ),
        ],
        failed=[],
    )


def _decision() -> Decision:
    return Decision(
        promote=True,
        reason="no champion yet",
        metric="f1",
        challenger=0.81,
    )


def _registration(version: int, digest: str) -> Registration:
    return Registration(
        name=NAME,
        version=version,
        digest=digest,
        status=ModelStatus.APPROVED,
        reason="no champion yet",
        alias="production",
        decision=_decision(),
    )


def _put(artifacts: InMemoryArtifactStore, name: str, value: Any) -> ArtifactRef:
    stored = artifacts.put(value)
    return ArtifactRef(name, stored.digest, stored.kind, stored.size)


def _as_stored(value: Any, plain: bool) -> Any:
    """A contract as this conveyor writes it, or the JSON dict older versions wrote."""
    return json.loads(value.to_bytes()) if plain else value


def _model_digest(store: SqlMetadataStore, artifacts: InMemoryArtifactStore, label: str) -> str:
    ref = _put(artifacts, "model", {"model": label})
    store.record_artifacts([ref])
    return ref.digest


def _train(
    store: SqlMetadataStore,
    artifacts: InMemoryArtifactStore,
    *,
    plain: bool = False,
    fingerprint: str = FP,
    evaluation: Evaluation | None = None,
    outcome: str = "registration",
) -> tuple[str, int]:
    """Record a train run by hand and register its model (approved, onto production).

    Returns ``(run_id, version)``.
    """
    run_id, ids = store.create_run(
        "train",
        STEPS,
        executor="local",
        params={"seed": 7, "model": NAME},
        git_commit="c0ffee",
        config_hash="cfg1",
    )
    store.record_dataset(
        fingerprint, source="data/churn.csv", n_rows=200, n_columns=5, run_id=run_id
    )

    def complete(step: str, **outputs: Any) -> None:
        store.start_step(ids[step], cache_key=f"{run_id}-{step}")
        refs = [_put(artifacts, name, value) for name, value in outputs.items()]
        store.complete_step(ids[step], inputs=[], outputs=refs)

    complete("ingest", dataset={"fingerprint": fingerprint})
    store.log_trials(
        run_id,
        "tune_rf",
        "rf",
        [
            {"number": 0, "state": "complete", "value": 0.7},
            {"number": 1, "state": "pruned"},
            {"number": 2, "state": "complete", "value": 0.8},
            {"number": 3, "state": "failed", "error": "boom"},
            {"number": 4, "state": "running"},
        ],
    )
    store.log_trials(run_id, "tune_rf", "lr", [{"number": 0, "state": "complete", "value": 0.7}])
    complete("tune_rf")
    complete("evaluate", evaluation=_as_stored(evaluation or _evaluation(), plain))
    complete("gate", gates=_as_stored(_gates(), plain))
    digest = _model_digest(store, artifacts, f"{run_id}")
    record = governance.register(
        store,
        NAME,
        digest=digest,
        run_id=run_id,
        status=ModelStatus.APPROVED,
        reason="no champion yet",
        alias="production",
        dataset=fingerprint,
        metrics={"f1": 0.81},
    )
    complete("register", **{outcome: _as_stored(_registration(record.version, digest), plain)})
    store.finish_run(run_id, RunStatus.SUCCEEDED)
    return run_id, record.version


# --- model_lineage: contracts and plain JSON read back the same ----------------------------------


@pytest.mark.parametrize("plain", [False, True], ids=["contracts", "plain-json"])
def test_model_lineage_reads_the_runs_outputs_as_contracts(
    store: SqlMetadataStore, artifacts: InMemoryArtifactStore, plain: bool
) -> None:
    run_id, version = _train(store, artifacts, plain=plain)
    lineage = model_lineage(store, artifacts, f"{NAME}:{version}")

    assert isinstance(lineage, ModelLineage)
    assert (lineage.model.name, lineage.model.version, lineage.model.run_id) == (NAME, 1, run_id)
    assert lineage.run is not None and lineage.run.id == run_id
    assert lineage.dataset is not None and lineage.dataset.fingerprint == FP
    assert lineage.candidates == [
        CandidateLine("rf", {"f1": 0.81}, chosen=True),
        CandidateLine("lr", {"f1": 0.74}, chosen=False),
    ]
    assert isinstance(lineage.gates, GateReport)
    assert lineage.gates == _gates()
    assert isinstance(lineage.decision, Decision)
    assert lineage.decision == _decision()
    assert lineage.trials == {
        "lr": TrialCounts(trials=1, complete=1),
        "rf": TrialCounts(trials=5, complete=2, pruned=1, failed=1),
    }
    assert lineage.aliases == ["production"]
    assert lineage.served_as == [f"{NAME}@production"]
    assert [(h["action"], h["previous_version"], h["version"]) for h in lineage.alias_history] == [
        ("promote", None, 1)
    ]


def test_contracts_and_plain_json_give_the_same_lineage_json(
    store: SqlMetadataStore, artifacts: InMemoryArtifactStore
) -> None:
    typed = model_lineage(store, artifacts, f"{NAME}:{_train(store, artifacts)[1]}").to_json()
    plain = model_lineage(
        store, artifacts, f"{NAME}:{_train(store, artifacts, plain=True)[1]}"
    ).to_json()
    for key in ("candidates", "trials", "gates", "decision"):
        assert typed[key] == plain[key], key
    assert typed["decision"] == _decision().to_json()
    assert len(typed["gates"]) == 2
    # each read while its version held production
    assert typed["served_as"] == plain["served_as"] == [f"{NAME}@production"]
    assert (typed["model"]["version"], plain["model"]["version"]) == (1, 2)


def test_the_chosen_candidate_follows_the_evaluations_best(
    store: SqlMetadataStore, artifacts: InMemoryArtifactStore
) -> None:
    _, version = _train(store, artifacts, evaluation=_evaluation(best="lr"), plain=True)
    lineage = model_lineage(store, artifacts, f"{NAME}:{version}")
    assert [(c.candidate, c.chosen) for c in lineage.candidates] == [("rf", False), ("lr", True)]


@pytest.mark.parametrize("plain", [False, True], ids=["contracts", "plain-json"])
def test_a_rejected_runs_decision_comes_from_its_rejection_output(
    store: SqlMetadataStore, artifacts: InMemoryArtifactStore, plain: bool
) -> None:
    _, version = _train(store, artifacts, plain=plain, outcome="rejection")
    lineage = model_lineage(store, artifacts, f"{NAME}:{version}")
    assert lineage.decision == _decision()


# --- to_json shape -------------------------------------------------------------------------------


def test_model_lineage_to_json_shape(
    store: SqlMetadataStore, artifacts: InMemoryArtifactStore
) -> None:
    run_id, version = _train(store, artifacts, plain=True)
    data = model_lineage(store, artifacts, f"{NAME}@production").to_json()

    assert list(data) == [
        "model",
        "dataset",
        "run",
        "candidates",
        "trials",
        "gates",
        "decision",
        "alias_history",
        "aliases",
        "served_as",
    ]
    assert json.loads(json.dumps(data)) == data  # plain JSON throughout
    assert (data["model"]["name"], data["model"]["version"], data["model"]["status"]) == (
        NAME,
        version,
        "approved",
    )
    assert data["model"]["dataset"] == FP
    assert data["dataset"]["fingerprint"] == FP
    assert data["dataset"]["n_rows"] == 200
    assert "models" not in data["dataset"]
    assert data["run"] == {
        "id": run_id,
        "pipeline": "train",
        "status": "succeeded",
        "started_at": data["run"]["started_at"],
        "git_commit": "c0ffee",
        "config_hash": "cfg1",
        "executor": "local",
        "params": {"seed": 7, "model": NAME},
    }
    assert isinstance(data["run"]["started_at"], float)
    assert data["candidates"] == [
        {"candidate": "rf", "metrics": {"f1": 0.81}, "chosen": True},
        {"candidate": "lr", "metrics": {"f1": 0.74}, "chosen": False},
    ]
    assert data["trials"] == {
        "lr": {"trials": 1, "complete": 1, "pruned": 0, "failed": 0},
        "rf": {"trials": 5, "complete": 2, "pruned": 1, "failed": 1},
    }
    assert data["gates"] == [
        {"metric": "f1", "rule": ">= 0.7", "value": 0.81, "passed": True},
        {"metric": "f1", "rule": "> baseline (most frequent class)", "value": 0.81, "passed": True},
    ]
    assert data["decision"] == {
        "promote": True,
        "reason": "no champion yet",
        "metric": "f1",
        "challenger": 0.81,
        "champion": None,
        "champion_version": None,
    }
    assert [(h["alias"], h["action"], h["version"]) for h in data["alias_history"]] == [
        ("production", "promote", version)
    ]
    assert data["aliases"] == ["production"]
    assert data["served_as"] == [f"{NAME}@production"]


# --- alias history and served_as -----------------------------------------------------------------


def test_alias_history_keeps_the_moves_onto_and_off_the_version(
    store: SqlMetadataStore, artifacts: InMemoryArtifactStore
) -> None:
    _, v1 = _train(store, artifacts)
    _, v2 = _train(store, artifacts, plain=True)  # production: v1 -> v2
    _, v3 = _train(store, artifacts)  # production: v2 -> v3
    governance.promote(store, NAME, v1, alias="staging", reason="shadow")
    governance.rollback(store, NAME, alias="production", reason="latency")  # v3 -> v2

    def moves(version: int) -> list[tuple[str, str, int | None, int]]:
        lineage = model_lineage(store, artifacts, f"{NAME}:{version}")
        return [
            (h["alias"], h["action"], h["previous_version"], h["version"])
            for h in lineage.alias_history
        ]

    assert moves(v1) == [
        ("production", "promote", None, v1),
        ("production", "promote", v1, v2),
        ("staging", "promote", None, v1),
    ]
    assert moves(v2) == [
        ("production", "promote", v1, v2),
        ("production", "promote", v2, v3),
        ("production", "rollback", v3, v2),
    ]
    assert moves(v3) == [("production", "promote", v2, v3), ("production", "rollback", v3, v2)]
    assert model_lineage(store, artifacts, f"{NAME}:{v1}").served_as == [f"{NAME}@staging"]
    assert model_lineage(store, artifacts, f"{NAME}:{v2}").served_as == [f"{NAME}@production"]
    assert model_lineage(store, artifacts, f"{NAME}:{v3}").served_as == []
    assert model_lineage(store, artifacts, f"{NAME}:{v3}").to_json()["aliases"] == []


def test_served_as_lists_every_alias_sorted(
    store: SqlMetadataStore, artifacts: InMemoryArtifactStore
) -> None:
    _, version = _train(store, artifacts)
    governance.promote(store, NAME, version, alias="canary", reason="x")
    governance.promote(store, NAME, version, alias="staging", reason="x")
    lineage = model_lineage(store, artifacts, NAME)
    assert lineage.aliases == ["canary", "production", "staging"]
    assert lineage.served_as == [f"{NAME}@canary", f"{NAME}@production", f"{NAME}@staging"]


# --- what is missing -----------------------------------------------------------------------------


def test_a_version_registered_without_a_run_has_an_empty_lineage(
    store: SqlMetadataStore, artifacts: InMemoryArtifactStore
) -> None:
    digest = _model_digest(store, artifacts, "by hand")
    governance.register(
        store, NAME, digest=digest, run_id=None, status=ModelStatus.CANDIDATE, reason="imported"
    )
    lineage = model_lineage(store, artifacts, f"{NAME}:1")
    assert (lineage.run, lineage.dataset, lineage.gates, lineage.decision) == (
        None,
        None,
        None,
        None,
    )
    assert (lineage.candidates, lineage.trials, lineage.aliases, lineage.alias_history) == (
        [],
        {},
        [],
        [],
    )
    data = lineage.to_json()
    assert (data["run"], data["dataset"], data["gates"], data["decision"]) == (None, None, [], None)
    assert (data["candidates"], data["trials"], data["served_as"]) == ([], {}, [])
    assert data["model"]["status"] == "candidate"
    assert data["model"]["reason"] == "imported"


def test_outputs_whose_bytes_are_gone_are_left_out(
    store: SqlMetadataStore, artifacts: InMemoryArtifactStore
) -> None:
    run_id, version = _train(store, artifacts)
    outputs = {o.name: o for s in store.get_run(run_id).steps for o in s.outputs}
    artifacts.delete(outputs["evaluation"].digest)
    artifacts.delete(outputs["gates"].digest)
    lineage = model_lineage(store, artifacts, f"{NAME}:{version}")
    assert (lineage.candidates, lineage.gates) == ([], None)
    assert lineage.decision == _decision()  # the registration is still there
    assert lineage.to_json()["gates"] == []


def test_lineage_of_an_unknown_version_is_not_found(
    store: SqlMetadataStore, artifacts: InMemoryArtifactStore
) -> None:
    _train(store, artifacts)
    with pytest.raises(ModelNotFoundError, match=f"no model version {NAME}:5"):
        model_lineage(store, artifacts, f"{NAME}:5")
    with pytest.raises(ModelNotFoundError, match=f"{NAME}@canary is not set"):
        model_lineage(store, artifacts, f"{NAME}@canary")


# --- dataset_lineage -----------------------------------------------------------------------------


def test_dataset_lineage_by_prefix_lists_the_models_trained_on_it(
    store: SqlMetadataStore, artifacts: InMemoryArtifactStore
) -> None:
    run1, v1 = _train(store, artifacts)
    run2, v2 = _train(store, artifacts, fingerprint=OTHER_FP)
    run3, v3 = _train(store, artifacts, plain=True)  # production moves to v3

    lineage = dataset_lineage(store, "ab12")
    assert isinstance(lineage, DatasetLineage)
    assert lineage.dataset.fingerprint == FP
    assert lineage.dataset.models == (f"{NAME}:{v1}", f"{NAME}:{v3}")
    assert sorted(lineage.models, key=lambda m: m.model) == [
        DatasetModel(f"{NAME}:{v1}", "approved", run1, {"f1": 0.81}, []),
        DatasetModel(f"{NAME}:{v3}", "approved", run3, {"f1": 0.81}, ["production"]),
    ]
    other = dataset_lineage(store, OTHER_FP)
    assert [(m.model, m.run_id) for m in other.models] == [(f"{NAME}:{v2}", run2)]


def test_dataset_lineage_to_json_shape(
    store: SqlMetadataStore, artifacts: InMemoryArtifactStore
) -> None:
    run_id, version = _train(store, artifacts)
    data = dataset_lineage(store, FP).to_json()
    assert json.loads(json.dumps(data))["dataset"]["models"] == [f"{NAME}:{version}"]
    assert list(data) == ["dataset", "models"]
    dataset = data["dataset"]
    assert (dataset["fingerprint"], dataset["source"], dataset["n_rows"], dataset["n_columns"]) == (
        FP,
        "data/churn.csv",
        200,
        5,
    )
    assert list(dataset["models"]) == [f"{NAME}:{version}"]
    assert data["models"] == [
        {
            "model": f"{NAME}:{version}",
            "status": "approved",
            "run_id": run_id,
            "metrics": {"f1": 0.81},
            "aliases": ["production"],
        }
    ]


def test_a_dataset_no_model_used_has_no_models(store: SqlMetadataStore) -> None:
    store.record_dataset(FP, source="s.csv", n_rows=1, n_columns=1)
    lineage = dataset_lineage(store, FP[:10])
    assert (lineage.dataset.fingerprint, lineage.models) == (FP, [])
    assert lineage.to_json()["models"] == []


def test_an_ambiguous_prefix_is_not_found(store: SqlMetadataStore) -> None:
    store.record_dataset(FP, source="a.csv", n_rows=1, n_columns=1)
    store.record_dataset(OTHER_FP, source="b.csv", n_rows=1, n_columns=1)
    with pytest.raises(NotFoundError) as caught:
        dataset_lineage(store, "ab")
    assert str(caught.value) == (
        "several dataset versions match 'ab' (see `conveyor data versions`)"
    )
    assert dataset_lineage(store, "ab3").dataset.fingerprint == OTHER_FP


@pytest.mark.parametrize("prefix", ["zz", FP + "0", "AB12"])
def test_an_unknown_prefix_is_not_found(store: SqlMetadataStore, prefix: str) -> None:
    store.record_dataset(FP, source="a.csv", n_rows=1, n_columns=1)
    with pytest.raises(NotFoundError) as caught:
        dataset_lineage(store, prefix)
    assert str(caught.value) == (
        f"no dataset version match {prefix!r} (see `conveyor data versions`)"
    )


def test_an_empty_store_has_no_dataset(store: SqlMetadataStore) -> None:
    with pytest.raises(NotFoundError, match="no dataset version match 'ab'"):
        dataset_lineage(store, "ab")
