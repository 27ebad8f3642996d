"""What the metadata store's registry half records: every field of a registration, its events,
aliases and their history, statuses, the audit log's filters, the refusals and their words, and
registrations that lose a race for a version number (retried, never numbered twice)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from conveyor.errors import MetadataStorageError, ModelNotFoundError, RegistryError
from conveyor.registry.governance import ALIAS_HOLDERS
from conveyor.store.metadata import ArtifactRef, open_metadata_store
from conveyor.store.metadata import _registry as registry_module
from conveyor.store.metadata import tables as t

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conveyor.store.metadata import SqlMetadataStore

NAME = "fraud"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[SqlMetadataStore]:
    monkeypatch.setenv("CONVEYOR_ACTOR", "ana@example.com")
    metadata = open_metadata_store("sqlite://")
    yield metadata
    metadata.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def any_store(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SqlMetadataStore]:
    """The registry on SQLite and PostgreSQL, whose unique violations read differently."""
    monkeypatch.setenv("CONVEYOR_ACTOR", "ana@example.com")
    url = "sqlite://" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    metadata = open_metadata_store(url)
    yield metadata
    metadata.close()


def _digest(n: int) -> str:
    return f"{n:064x}"


def _artifact(store: SqlMetadataStore, n: int) -> str:
    store.record_artifacts([ArtifactRef(f"model-{n}", _digest(n), "joblib", n)])
    return _digest(n)


def _register(store: SqlMetadataStore, name: str = NAME, **kwargs: Any) -> int:
    n = len(store.list_model_versions()) + 1
    digest = _artifact(store, n)
    return store.register_model_version(name, digest=digest, run_id=None, **kwargs).version


def _events(store: SqlMetadataStore, **filters: Any) -> list[tuple[str, str, str | None]]:
    return [(e.action, e.entity, e.reason) for e in store.list_events(**filters)]


# --- registration -------------------------------------------------------------------------------


def test_a_registration_records_every_field_and_one_event(store: SqlMetadataStore) -> None:
    digest = _artifact(store, 1)
    store.record_dataset("d" * 64, source="data/fraud.csv", n_rows=10, n_columns=3)
    before = time.time()
    record = store.register_model_version(
        NAME,
        digest=digest,
        run_id=None,
        dataset="d" * 64,
        metrics={"f1": 0.9},
        signature={"columns": {}},
        tags={"team": "risk"},
        git_commit="abc",
        config_hash="cfg",
        reason="weekly",
    )
    assert (record.name, record.version, record.digest, record.run_id) == (NAME, 1, digest, None)
    assert (record.dataset, record.status, record.reason) == ("d" * 64, "candidate", "weekly")
    assert (record.metrics, record.signature, record.tags) == (
        {"f1": 0.9},
        {"columns": {}},
        {"team": "risk"},
    )
    assert (record.git_commit, record.config_hash) == ("abc", "cfg")
    assert before <= record.created_at <= time.time()
    assert store.get_model_version(NAME, 1) == record
    [event] = store.list_events()
    assert (event.action, event.entity, event.reason, event.actor) == (
        "register",
        f"{NAME}:1",
        "weekly",
        "ana@example.com",
    )
    assert event.details == {"run_id": None, "digest": digest, "status": "candidate"}
    assert store.aliases() == {}


def test_empty_mappings_are_stored_as_empty_and_no_signature_as_none(
    store: SqlMetadataStore,
) -> None:
    digest = _artifact(store, 1)
    record = store.register_model_version(
        NAME, digest=digest, run_id=None, metrics={}, signature={}, tags={}
    )
    assert (record.metrics, record.signature, record.tags) == ({}, None, {})
    assert store.get_model_version(NAME) == record
    bare = store.register_model_version(NAME, digest=digest, run_id=None)
    assert (bare.metrics, bare.signature, bare.tags, bare.dataset) == ({}, None, {}, None)
    assert (bare.git_commit, bare.config_hash, bare.reason) == (None, None, None)


def test_versions_count_per_name(store: SqlMetadataStore) -> None:
    assert [_register(store, "a"), _register(store, "a"), _register(store, "b")] == [1, 2, 1]
    assert _register(store, "a") == 3
    listed = [(m.name, m.version) for m in store.list_model_versions()]
    assert listed == [("a", 3), ("a", 2), ("a", 1), ("b", 1)]
    assert [_register(store, "0first") for _ in range(5)] == [1, 2, 3, 4, 5]
    listed = [(m.name, m.version) for m in store.list_model_versions()]
    assert listed[:6] == [("0first", v) for v in (5, 4, 3, 2, 1)] + [("a", 3)]
    assert [m.version for m in store.list_model_versions("a")] == [3, 2, 1]
    assert store.list_model_versions("c") == []


def test_a_rejected_registration_records_the_rejection_too(store: SqlMetadataStore) -> None:
    v = _register(store, status="rejected", reason="f1 below the gate")
    events = store.list_events()
    assert [(e.action, e.entity, e.reason) for e in events] == [
        ("register", f"{NAME}:{v}", "f1 below the gate"),
        ("reject", f"{NAME}:{v}", "f1 below the gate"),
    ]
    assert events[0].details["status"] == "rejected"
    assert events[1].details == {"run_id": None}


def test_a_registration_with_an_alias_promotes_in_the_same_transaction(
    store: SqlMetadataStore,
) -> None:
    v1 = _register(store, status="approved")
    v2 = _register(store, status="approved", alias="production", reason="won")
    assert store.aliases() == {(NAME, "production"): v2}
    [move] = store.alias_history(NAME)
    assert (move["version"], move["previous_version"], move["action"], move["reason"]) == (
        v2,
        None,
        "promote",
        "won",
    )
    assert _events(store)[-1] == ("promote", f"{NAME}:{v2}", "won")
    assert v1 == 1


@pytest.mark.parametrize("name", ["", "a b", "m@prod", "m:1", "-x", "x" * 101])
def test_a_model_name_that_breaks_references_is_refused(store: SqlMetadataStore, name: str) -> None:
    digest = _artifact(store, 1)
    with pytest.raises(RegistryError) as caught:
        store.register_model_version(name, digest=digest, run_id=None)
    assert str(caught.value).startswith(f"model name {name!r}: use 1-100 letters")
    assert store.list_model_versions() == []


@pytest.mark.parametrize("alias", ["", "prod uction", "a@b", "a:b"])
def test_an_alias_that_breaks_references_is_refused_before_registering(
    store: SqlMetadataStore, alias: str
) -> None:
    digest = _artifact(store, 1)
    with pytest.raises(RegistryError) as caught:
        store.register_model_version(NAME, digest=digest, run_id=None, alias=alias)
    assert str(caught.value).startswith(f"alias {alias!r}: use 1-100 letters")
    assert store.list_model_versions() == []
    v = _register(store)
    with pytest.raises(RegistryError, match="^alias "):
        store.set_alias(NAME, alias, v)
    with pytest.raises(RegistryError, match="^alias "):
        store.rollback_alias(NAME, alias)


def test_a_registration_that_loses_the_race_for_its_number_is_retried(
    any_store: SqlMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A concurrent writer that took the version number first shows up as a unique violation;
    the registration starts over and takes the next number."""
    _register(any_store)
    real_lock = registry_module._lock_model_name
    calls: list[str] = []

    def racing_lock(conn: sa.Connection, name: str) -> None:
        calls.append(name)
        real_lock(conn, name)
        if len(calls) < 3:  # another writer registers the same number first, twice
            row = conn.execute(sa.select(t.model_versions)).mappings().first()
            assert row is not None
            conn.execute(
                sa.insert(t.model_versions).values({k: v for k, v in row.items() if k != "id"})
            )

    monkeypatch.setattr(registry_module, "_lock_model_name", racing_lock)
    record = any_store.register_model_version(NAME, digest=_digest(1), run_id=None)
    assert calls == [NAME, NAME, NAME]
    assert record.version == 2
    assert [m.version for m in any_store.list_model_versions(NAME)] == [2, 1]
    assert [e.entity for e in any_store.list_events(action="register")] == [
        f"{NAME}:1",
        f"{NAME}:2",
    ]


def test_a_registration_that_always_loses_gives_up_after_twenty_tries(
    any_store: SqlMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(any_store)
    calls: list[str] = []

    def always_taken(conn: sa.Connection, name: str) -> None:
        calls.append(name)
        row = conn.execute(sa.select(t.model_versions)).mappings().first()
        assert row is not None
        conn.execute(
            sa.insert(t.model_versions).values({k: v for k, v in row.items() if k != "id"})
        )

    monkeypatch.setattr(registry_module, "_lock_model_name", always_taken)
    with pytest.raises(MetadataStorageError) as caught:
        any_store.register_model_version(NAME, digest=_digest(1), run_id=None)
    assert str(caught.value) == f"could not register {NAME}: too many concurrent registrations"
    assert len(calls) == 20
    assert [m.version for m in any_store.list_model_versions(NAME)] == [1]


def test_a_registration_failing_otherwise_is_not_retried(
    any_store: SqlMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_lock = registry_module._lock_model_name

    def counting_lock(conn: sa.Connection, name: str) -> None:
        calls.append(name)
        real_lock(conn, name)

    monkeypatch.setattr(registry_module, "_lock_model_name", counting_lock)
    with pytest.raises(MetadataStorageError, match="(?i)foreign key"):  # no such artifact
        any_store.register_model_version(NAME, digest=_digest(9), run_id=None)
    assert calls == [NAME]
    assert any_store.list_model_versions() == [] and any_store.list_events() == []


def test_a_registration_failing_for_another_reason_is_not_retried(
    store: SqlMetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = _artifact(store, 1)
    calls: list[str] = []

    def unreachable(conn: sa.Connection, name: str) -> None:
        calls.append(name)
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("disk I/O error"))

    monkeypatch.setattr(registry_module, "_lock_model_name", unreachable)
    with pytest.raises(MetadataStorageError, match="disk I/O error"):
        store.register_model_version(NAME, digest=digest, run_id=None)
    assert calls == [NAME]


# --- reading versions and aliases ---------------------------------------------------------------


def test_get_model_version_refusals_name_what_was_asked(store: SqlMetadataStore) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        store.get_model_version(NAME)
    assert str(caught.value) == f"no model version {NAME} (see `conveyor models list`)"
    _register(store)
    with pytest.raises(ModelNotFoundError) as caught:
        store.get_model_version(NAME, 2)
    assert str(caught.value) == f"no model version {NAME}:2 (see `conveyor models list`)"
    _register(store, "other")
    assert store.get_model_version(NAME).version == 1  # the latest of this name only


def test_get_alias_and_aliases(store: SqlMetadataStore) -> None:
    v1, v2 = _register(store, status="approved"), _register(store, status="approved")
    w = _register(store, "other", status="approved")
    with pytest.raises(ModelNotFoundError) as caught:
        store.get_alias(NAME, "production")
    assert str(caught.value) == f"{NAME}@production is not set (see `conveyor models list`)"
    store.set_alias(NAME, "production", v1)
    store.set_alias(NAME, "staging", v2)
    store.set_alias("other", "production", w)
    assert store.get_alias(NAME, "production") == v1
    assert store.get_alias(NAME, "staging") == v2
    assert store.get_alias("other", "production") == w
    assert store.aliases(NAME) == {(NAME, "production"): v1, (NAME, "staging"): v2}
    assert store.aliases() == {
        (NAME, "production"): v1,
        (NAME, "staging"): v2,
        ("other", "production"): w,
    }


def test_set_alias_returns_the_previous_version_and_records_the_move(
    store: SqlMetadataStore,
) -> None:
    v1, v2 = _register(store, status="approved"), _register(store, status="approved")
    assert store.set_alias(NAME, "production", v1, reason="first") is None
    before = time.time()
    assert store.set_alias(NAME, "production", v2, reason="second", action="approve") == v1
    history = store.alias_history(NAME, "production")
    assert [(h["version"], h["previous_version"], h["action"]) for h in history] == [
        (v1, None, "promote"),
        (v2, v1, "approve"),
    ]
    last = history[-1]
    assert (last["name"], last["alias"], last["actor"], last["reason"]) == (
        NAME,
        "production",
        "ana@example.com",
        "second",
    )
    assert before <= last["at"] <= time.time()
    event = store.list_events(last=1)[0]
    assert (event.action, event.entity, event.reason) == ("approve", f"{NAME}:{v2}", "second")
    assert event.details == {"alias": "production", "previous_version": v1}
    assert store.list_events()[-2].details == {"alias": "production", "previous_version": None}


def test_set_alias_refuses_unknown_versions_and_statuses_that_may_not_hold_one(
    store: SqlMetadataStore,
) -> None:
    """The store checks the statuses governance allows (``holders``) in the transaction that
    moves the alias; which statuses those are is governance's rule, not the store's."""
    v = _register(store)
    with pytest.raises(ModelNotFoundError) as caught:
        store.set_alias(NAME, "production", v + 1, holders=ALIAS_HOLDERS)
    assert str(caught.value) == f"no model version {NAME}:{v + 1}"
    for status in ("candidate", "rejected", "archived"):
        store.set_model_status(NAME, v, status)
        with pytest.raises(RegistryError) as refused:
            store.set_alias(NAME, "production", v, holders=ALIAS_HOLDERS)
        assert str(refused.value) == (
            f"{NAME}:{v} is {status}; a {status} version cannot be given an alias"
        )
    assert store.aliases() == {} and store.alias_history(NAME) == []
    assert store.set_alias(NAME, "production", v, holders=None) is None  # no rule: raw store
    assert store.aliases() == {(NAME, "production"): v}


def test_alias_history_of_a_name_and_of_one_alias(store: SqlMetadataStore) -> None:
    v1, v2 = _register(store, status="approved"), _register(store, status="approved")
    w = _register(store, "other", status="approved")
    store.set_alias(NAME, "production", v1)
    store.set_alias(NAME, "staging", v2)
    store.set_alias("other", "production", w)
    store.set_alias(NAME, "production", v2)
    assert [(h["alias"], h["version"]) for h in store.alias_history(NAME)] == [
        ("production", v1),
        ("staging", v2),
        ("production", v2),
    ]
    assert [h["version"] for h in store.alias_history(NAME, "production")] == [v1, v2]
    assert store.alias_history(NAME, "canary") == []


# --- rollback refusals (the history itself: tests/registry/test_rollback_history.py) ------------


def test_rollback_refusals_say_why(store: SqlMetadataStore) -> None:
    v1, v2 = _register(store, status="approved"), _register(store, status="approved")
    with pytest.raises(ModelNotFoundError) as caught:
        store.rollback_alias(NAME, "production")
    assert str(caught.value) == f"{NAME}@production is not set: nothing to roll back"
    store.set_alias(NAME, "production", v1)
    with pytest.raises(RegistryError) as refused:
        store.rollback_alias(NAME, "production")
    assert str(refused.value) == (
        f"{NAME}@production has no earlier version to roll back to (it has only ever pointed "
        f"at v{v1}); use --to VER"
    )
    store.set_alias(NAME, "production", v1)  # promoting the same version again is no earlier one
    with pytest.raises(RegistryError, match="no earlier version"):
        store.rollback_alias(NAME, "production")
    with pytest.raises(RegistryError) as refused:
        store.rollback_alias(NAME, "production", to=v1)
    assert str(refused.value) == f"{NAME}@production already points at v{v1}"
    store.set_alias(NAME, "production", v2)
    assert store.rollback_alias(NAME, "production", reason="bad") == (v2, v1)
    last = store.alias_history(NAME, "production")[-1]
    assert (last["action"], last["version"], last["previous_version"], last["reason"]) == (
        "rollback",
        v1,
        v2,
        "bad",
    )


def test_rollback_is_per_alias(store: SqlMetadataStore) -> None:
    v1, v2, v3 = (_register(store, status="approved") for _ in range(3))
    store.set_alias(NAME, "production", v1)
    store.set_alias(NAME, "staging", v3)
    store.set_alias(NAME, "production", v2)
    store.set_alias(NAME, "staging", v1)
    assert store.rollback_alias(NAME, "production") == (v2, v1)
    assert store.rollback_alias(NAME, "staging") == (v1, v3)


# --- statuses -----------------------------------------------------------------------------------


def test_set_model_status_records_an_event_named_by_the_action(store: SqlMetadataStore) -> None:
    v = _register(store)
    store.set_model_status(NAME, v, "approved", reason="ok", action="approve")
    store.set_model_status(NAME, v, "archived")
    record = store.get_model_version(NAME, v)
    assert (record.status, record.reason) == ("archived", None)
    events = store.list_events()[1:]
    assert [(e.action, e.entity, e.reason, e.details) for e in events] == [
        ("approve", f"{NAME}:{v}", "ok", {"status": "approved"}),
        ("archived", f"{NAME}:{v}", None, {"status": "archived"}),
    ]


def test_set_model_status_of_an_unknown_version_changes_nothing(store: SqlMetadataStore) -> None:
    v = _register(store)
    _register(store, "other")
    with pytest.raises(ModelNotFoundError) as caught:
        store.set_model_status(NAME, v + 1, "archived")
    assert str(caught.value) == f"no model version {NAME}:{v + 1}"
    assert store.get_model_version("other", 1).status == "candidate"
    assert len(store.list_events()) == 2


# --- the audit log ------------------------------------------------------------------------------


def test_events_filter_by_entity_action_time_and_last(store: SqlMetadataStore) -> None:
    store.append_event("note", "fraud", reason="r", details={"k": 1})
    store.append_event("promote", "fraud:1")
    store.append_event("promote", "fraud_v2:1")  # "_" is no wildcard
    store.append_event("promote", "fraudster:1")
    store.append_event("promote", "fraudy:1")  # nor a pattern's any-one-character
    store.append_event("note", "other:1")
    store.append_event("promote", "fraud:2")
    every = store.list_events()
    assert [e.entity for e in every] == [
        "fraud",
        "fraud:1",
        "fraud_v2:1",
        "fraudster:1",
        "fraudy:1",
        "other:1",
        "fraud:2",
    ]
    assert every[0].reason == "r" and every[0].details == {"k": 1} and every[1].details == {}
    assert [e.entity for e in store.list_events(entity="fraud")] == ["fraud", "fraud:1", "fraud:2"]
    assert [e.entity for e in store.list_events(entity="fraud:1")] == ["fraud:1"]
    assert [e.entity for e in store.list_events(entity="fraud_")] == []
    assert [e.entity for e in store.list_events(action="note")] == ["fraud", "other:1"]
    assert [e.entity for e in store.list_events(entity="fraud", action="promote")] == [
        "fraud:1",
        "fraud:2",
    ]
    assert [e.entity for e in store.list_events(last=2)] == ["other:1", "fraud:2"]
    assert [e.entity for e in store.list_events(entity="fraud", last=2)] == ["fraud:1", "fraud:2"]
    assert store.list_events(last=0) == []
    assert store.list_events(since=every[3].at) == [e for e in every if e.at >= every[3].at]
    assert [e.entity for e in store.list_events(entity="fraud_")] == []
    assert store.list_events(since=every[-1].at + 1) == []
    assert [e.id for e in every] == sorted(e.id for e in every)


def test_moving_one_alias_leaves_every_other_alias_alone(store: SqlMetadataStore) -> None:
    v1, v2 = _register(store, status="approved"), _register(store, status="approved")
    w1, w2 = (_register(store, "other", status="approved") for _ in range(2))
    store.set_alias(NAME, "production", v1)
    store.set_alias(NAME, "staging", v1)
    store.set_alias("other", "production", w1)
    store.set_alias(NAME, "production", v2)
    assert store.aliases() == {
        (NAME, "production"): v2,
        (NAME, "staging"): v1,
        ("other", "production"): w1,
    }
    store.set_alias("other", "production", w2)
    assert store.rollback_alias(NAME, "production") == (v2, v1)
    assert store.aliases() == {
        (NAME, "production"): v1,
        (NAME, "staging"): v1,
        ("other", "production"): w2,
    }
    assert store.rollback_alias("other", "production") == (w2, w1)


def test_a_status_change_touches_one_model_only(store: SqlMetadataStore) -> None:
    v = _register(store)
    w = _register(store, "other")
    assert v == w == 1
    store.set_model_status(NAME, v, "rejected", reason="gates")
    assert store.get_model_version("other", w).status == "candidate"
    assert store.get_model_version(NAME, v).status == "rejected"


@pytest.mark.service
def test_concurrent_registrations_on_postgresql_wait_for_each_other(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL reads max(version) without blocking: without the per-name lock, two writers
    take the same number and one has to start over. With it the second waits, and neither
    retries."""
    import threading

    store = open_metadata_store(postgres_url)
    try:
        for n in (1, 2):
            _artifact(store, n)
        real_lock = registry_module._lock_model_name
        attempts: list[str] = []
        both_in = threading.Barrier(2)

        def lock_then_meet(conn: sa.Connection, name: str) -> None:
            attempts.append(name)
            real_lock(conn, name)
            try:  # without the lock both get here at once and read the same max(version)
                both_in.wait(timeout=2)
            except threading.BrokenBarrierError:
                pass

        monkeypatch.setattr(registry_module, "_lock_model_name", lock_then_meet)
        versions: list[int] = []

        def register(n: int) -> None:
            versions.append(
                store.register_model_version(NAME, digest=_digest(n), run_id=None).version
            )

        threads = [threading.Thread(target=register, args=(n,)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(versions) == [1, 2]
        assert attempts == [NAME, NAME]  # nobody lost the race and started over
    finally:
        store.close()
