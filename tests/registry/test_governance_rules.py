"""The registry's governed state machine, through its public functions: who may be approved,
promoted, rolled back or archived, what each refusal says, and what each change records."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from conveyor.errors import ModelNotFoundError, RegistryError
from conveyor.registry.governance import AliasMove, approve, archive, promote, rollback
from conveyor.store.metadata import ArtifactRef, open_metadata_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conveyor.store.metadata import SqlMetadataStore

NAME = "churn"


@pytest.fixture
def store() -> Iterator[SqlMetadataStore]:
    metadata = open_metadata_store("sqlite://")
    yield metadata
    metadata.close()


def _register(store: SqlMetadataStore, status: str = "candidate", reason: str | None = None) -> int:
    n = len(store.list_model_versions(NAME)) + 1
    digest = f"{n:064x}"
    store.record_artifacts([ArtifactRef("model", digest, "joblib", 1)])
    return store.register_model_version(
        NAME, digest=digest, run_id=None, status=status, reason=reason
    ).version


def _status(store: SqlMetadataStore, version: int) -> tuple[str, str | None]:
    record = store.get_model_version(NAME, version)
    return record.status, record.reason


def _last_event(store: SqlMetadataStore) -> tuple[str, str, str | None]:
    event = store.list_events(last=1)[0]
    return event.action, event.entity, event.reason


# --- approve ------------------------------------------------------------------------------------


def test_approving_a_candidate_records_the_decision_and_its_reason(
    store: SqlMetadataStore,
) -> None:
    v = _register(store)
    record = approve(store, NAME, v, reason="reviewed the report")
    assert (record.name, record.version, record.status) == (NAME, v, "approved")
    assert record.reason == "reviewed the report"
    assert _status(store, v) == ("approved", "reviewed the report")
    assert _last_event(store) == ("approve", f"{NAME}:{v}", "reviewed the report")
    assert store.aliases(NAME) == {}


def test_approving_with_an_alias_promotes_in_the_same_call(store: SqlMetadataStore) -> None:
    v = _register(store)
    record = approve(store, NAME, v, reason="ship it", alias="production")
    assert record.status == "approved"
    assert store.aliases(NAME) == {(NAME, "production"): v}
    [move] = store.alias_history(NAME, "production")
    assert (move["version"], move["action"], move["reason"]) == (v, "promote", "ship it")


@pytest.mark.parametrize("reason", ["", "   ", "\t\n"])
def test_an_approval_needs_a_reason(store: SqlMetadataStore, reason: str) -> None:
    v = _register(store)
    with pytest.raises(RegistryError) as caught:
        approve(store, NAME, v, reason=reason, alias="production")
    assert str(caught.value) == "an approval needs a reason (--reason)"
    assert _status(store, v) == ("candidate", None)
    assert store.aliases(NAME) == {}


def test_approving_twice_is_refused(store: SqlMetadataStore) -> None:
    v = _register(store)
    approve(store, NAME, v, reason="first")
    with pytest.raises(RegistryError) as caught:
        approve(store, NAME, v, reason="second")
    assert str(caught.value) == f"{NAME}:{v} is already approved"
    assert _status(store, v) == ("approved", "first")


@pytest.mark.parametrize("status", ["rejected", "archived"])
def test_only_a_candidate_can_be_approved(store: SqlMetadataStore, status: str) -> None:
    v = _register(store)
    store.set_model_status(NAME, v, status, reason="gone")
    with pytest.raises(RegistryError) as caught:
        approve(store, NAME, v, reason="please", alias="production")
    assert str(caught.value) == f"{NAME}:{v} is {status}; only a candidate can be approved"
    assert _status(store, v) == (status, "gone")
    assert store.aliases(NAME) == {}


def test_approving_an_unknown_version_is_not_found(store: SqlMetadataStore) -> None:
    _register(store)
    with pytest.raises(ModelNotFoundError):
        approve(store, NAME, 7, reason="")


# --- promote ------------------------------------------------------------------------------------


def test_promoting_a_candidate_by_hand_approves_it(store: SqlMetadataStore) -> None:
    v = _register(store)
    move = promote(store, NAME, v, alias="production", reason="hotfix")
    assert move == AliasMove(NAME, "production", None, v)
    assert _status(store, v) == ("approved", "hotfix")
    actions = [(e.action, e.entity, e.reason) for e in store.list_events(entity=NAME)]
    assert actions[-2:] == [
        ("approve", f"{NAME}:{v}", "hotfix"),
        ("promote", f"{NAME}:{v}", "hotfix"),
    ]
    assert store.aliases(NAME) == {(NAME, "production"): v}


def test_promote_returns_where_the_alias_pointed_before(store: SqlMetadataStore) -> None:
    v1, v2 = _register(store), _register(store)
    promote(store, NAME, v1, alias="production", reason="first")
    move = promote(store, NAME, v2, alias="production", reason="better")
    assert move == AliasMove(NAME, "production", v1, v2)
    assert (move.name, move.alias, move.previous, move.current) == (NAME, "production", v1, v2)
    assert store.aliases(NAME) == {(NAME, "production"): v2}
    assert store.alias_history(NAME, "production")[-1]["reason"] == "better"


def test_require_approval_refuses_a_candidate_and_changes_nothing(
    store: SqlMetadataStore,
) -> None:
    v = _register(store)
    with pytest.raises(RegistryError) as caught:
        promote(store, NAME, v, alias="production", reason="x", require_approval=True)
    assert str(caught.value) == (
        f'{NAME}:{v} needs approval first: conveyor models approve {NAME} {v} --reason "..."'
    )
    assert _status(store, v) == ("candidate", None)
    assert store.aliases(NAME) == {}


def test_require_approval_promotes_an_approved_version_without_approving_again(
    store: SqlMetadataStore,
) -> None:
    v = _register(store)
    approve(store, NAME, v, reason="reviewed")
    move = promote(store, NAME, v, alias="production", reason="go", require_approval=True)
    assert move == AliasMove(NAME, "production", None, v)
    assert _status(store, v) == ("approved", "reviewed")
    assert [e.action for e in store.list_events(entity=NAME)].count("approve") == 1


@pytest.mark.parametrize(
    ("status", "reason", "shown"),
    [
        ("rejected", "f1 below the gate", "f1 below the gate"),
        ("archived", None, "no reason recorded"),
    ],
)
def test_a_rejected_or_archived_version_is_never_promoted(
    store: SqlMetadataStore, status: str, reason: str | None, shown: str
) -> None:
    v = _register(store, status=status, reason=reason)
    with pytest.raises(RegistryError) as caught:
        promote(store, NAME, v, alias="production", reason="anyway")
    assert str(caught.value) == (
        f"{NAME}:{v} is {status} ({shown}); a {status} version can never be given an alias"
    )
    assert _status(store, v) == (status, reason)
    assert store.aliases(NAME) == {}


# --- rollback -----------------------------------------------------------------------------------


def test_rollback_moves_back_and_says_from_where(store: SqlMetadataStore) -> None:
    v1, v2 = _register(store), _register(store)
    promote(store, NAME, v1, alias="production", reason="a")
    promote(store, NAME, v2, alias="production", reason="b")
    move = rollback(store, NAME, alias="production", reason="latency")
    assert move == AliasMove(NAME, "production", v2, v1)
    assert store.aliases(NAME) == {(NAME, "production"): v1}
    last = store.alias_history(NAME, "production")[-1]
    assert (last["action"], last["version"], last["reason"]) == ("rollback", v1, "latency")


def test_rollback_to_a_named_version(store: SqlMetadataStore) -> None:
    v1, v2, v3 = _register(store), _register(store), _register(store)
    for v in (v1, v2, v3):
        promote(store, NAME, v, alias="production", reason=f"v{v}")
    assert rollback(store, NAME, alias="production", reason="x", to=v1) == AliasMove(
        NAME, "production", v3, v1
    )


# --- archive ------------------------------------------------------------------------------------


def test_archiving_records_the_status_event_and_reason(store: SqlMetadataStore) -> None:
    v = _register(store)
    archive(store, NAME, v, reason="superseded")
    assert _status(store, v) == ("archived", "superseded")
    assert _last_event(store) == ("archive", f"{NAME}:{v}", "superseded")


def test_a_version_an_alias_points_at_cannot_be_archived(store: SqlMetadataStore) -> None:
    v1, v2 = _register(store), _register(store)
    promote(store, NAME, v1, alias="staging", reason="a")
    promote(store, NAME, v1, alias="production", reason="a")
    promote(store, NAME, v2, alias="canary", reason="b")
    with pytest.raises(RegistryError) as caught:
        archive(store, NAME, v1, reason="old")
    assert str(caught.value) == (
        f"{NAME}:{v1} is {NAME}@production, @staging; move the alias first "
        "(promote another version or roll back)"
    )
    assert _status(store, v1) == ("approved", "a")


def test_archiving_an_unknown_version_is_not_found(store: SqlMetadataStore) -> None:
    _register(store)
    with pytest.raises(ModelNotFoundError):
        archive(store, NAME, 9, reason="x")
    assert [e.action for e in store.list_events()] == ["register"]


def test_approve_returns_the_approved_version_not_the_latest(store: SqlMetadataStore) -> None:
    v1, v2 = _register(store), _register(store)
    record = approve(store, NAME, v1, reason="the older one")
    assert (record.version, record.status) == (v1, "approved")
    assert _status(store, v2) == ("candidate", None)


def test_an_alias_of_another_model_on_the_same_number_does_not_block_archiving(
    store: SqlMetadataStore,
) -> None:
    v = _register(store)
    other = store.register_model_version(
        "other", digest=store.get_model_version(NAME, v).digest, run_id=None
    ).version
    assert other == v
    promote(store, "other", other, alias="production", reason="other model")
    archive(store, NAME, v, reason="retired")
    assert _status(store, v) == ("archived", "retired")


def test_archiving_an_unknown_version_says_where_to_look(store: SqlMetadataStore) -> None:
    _register(store)
    _register(store)
    with pytest.raises(ModelNotFoundError) as caught:
        archive(store, NAME, 9, reason="x")
    assert str(caught.value) == f"no model version {NAME}:9 (see `conveyor models list`)"
    assert [_status(store, v)[0] for v in (1, 2)] == ["candidate", "candidate"]
