"""The model lifecycle as one table: :data:`TRANSITIONS` and :data:`ALIAS_HOLDERS`, the refusals
of :func:`check_transition`, registration through :func:`governance.register` (status and alias
in one transaction), stored statuses this conveyor does not know, every (current, new) status
pair walked through governance's public functions, and ``versions.signature_of`` (the stored
signature of a version, typed)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import pytest

from conveyor.contracts import ColumnSignature, ModelSignature, ModelStatus
from conveyor.errors import ConfigError, RegistryError
from conveyor.registry import governance
from conveyor.registry.governance import (
    ALIAS_HOLDERS,
    TRANSITIONS,
    approve,
    archive,
    check_transition,
    promote,
    register,
    rollback,
    status_of,
)
from conveyor.registry.versions import signature_of
from conveyor.store.metadata import ArtifactRef, open_metadata_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conveyor.store.metadata import SqlMetadataStore

NAME = "churn"
C, AP, RE, AR = (
    ModelStatus.CANDIDATE,
    ModelStatus.APPROVED,
    ModelStatus.REJECTED,
    ModelStatus.ARCHIVED,
)
PAIRS = list(itertools.product(ModelStatus, ModelStatus))


@pytest.fixture
def store() -> Iterator[SqlMetadataStore]:
    metadata = open_metadata_store("sqlite://")
    yield metadata
    metadata.close()


def _digest(store: SqlMetadataStore) -> str:
    n = len(store.list_model_versions()) + 1
    digest = f"{n:064x}"
    store.record_artifacts([ArtifactRef("model", digest, "joblib", 1)])
    return digest


def _register(
    store: SqlMetadataStore,
    status: ModelStatus = C,
    *,
    reason: str = "trained",
    alias: str | None = None,
) -> int:
    """A new version of NAME through governance."""
    return register(
        store,
        NAME,
        digest=_digest(store),
        run_id=None,
        status=status,
        reason=reason,
        alias=alias,
    ).version


def _at(store: SqlMetadataStore, status: ModelStatus) -> int:
    """A version of NAME whose stored status is ``status`` (reached through the table)."""
    if status in TRANSITIONS[None]:
        return _register(store, status, reason=f"registered {status}")
    v = _register(store, C)
    store.set_model_status(NAME, v, status, reason=f"set {status}")
    return v


def _status(store: SqlMetadataStore, version: int) -> str:
    return store.get_model_version(NAME, version).status


# --- the table -----------------------------------------------------------------------------------


def test_the_table_is_the_documented_lifecycle() -> None:
    assert TRANSITIONS == {
        None: frozenset({C, AP, RE}),
        C: frozenset({AP, RE, AR}),
        AP: frozenset({AR}),
        RE: frozenset({AR}),
        AR: frozenset(),
    }
    assert ALIAS_HOLDERS == frozenset({AP})


def test_every_status_has_a_row_and_no_status_returns_to_candidate() -> None:
    assert set(TRANSITIONS) == {None, *ModelStatus}
    assert all(C not in TRANSITIONS[s] for s in ModelStatus)
    assert all(s not in TRANSITIONS[s] for s in ModelStatus)  # no status becomes itself
    assert TRANSITIONS[AR] == frozenset()  # archived is the end
    assert AR not in TRANSITIONS[None]  # nothing is born archived


@pytest.mark.parametrize(("current", "new"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_check_transition_allows_exactly_the_table(current: ModelStatus, new: ModelStatus) -> None:
    if new in TRANSITIONS[current]:
        check_transition("m:1", current, new)
        return
    with pytest.raises(RegistryError) as caught:
        check_transition("m:1", current, new)
    if current == new:
        assert str(caught.value) == f"m:1 is already {new}"
    else:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing"
        assert str(caught.value) == f"m:1 is {current}; a {current} version can become {allowed}"


@pytest.mark.parametrize(
    ("current", "new", "message"),
    [
        (AR, AR, "churn:2 is already archived"),
        (AR, AP, "churn:2 is archived; a archived version can become nothing"),
        (RE, AP, "churn:2 is rejected; a rejected version can become archived"),
        (AP, C, "churn:2 is approved; a approved version can become archived"),
        (C, C, "churn:2 is already candidate"),
    ],
)
def test_check_transition_messages(current: ModelStatus, new: ModelStatus, message: str) -> None:
    with pytest.raises(RegistryError) as caught:
        check_transition("churn:2", current, new)
    assert str(caught.value) == message


@pytest.mark.parametrize("new", list(ModelStatus))
def test_check_transition_of_a_new_version(new: ModelStatus) -> None:
    if new is AR:
        with pytest.raises(RegistryError) as caught:
            check_transition("churn:new", None, new)
        assert str(caught.value) == "churn:new: a new version cannot be registered as archived"
    else:
        check_transition("churn:new", None, new)


def test_the_candidate_row_lists_its_targets_sorted() -> None:
    with pytest.raises(RegistryError) as caught:
        check_transition("m:1", C, C)
    assert str(caught.value) == "m:1 is already candidate"
    # the one row with several targets: its message lists them in order
    allowed = ", ".join(sorted(TRANSITIONS[C]))
    assert allowed == "approved, archived, rejected"


# --- every (current, new) pair through governance ------------------------------------------------


def _apply(store: SqlMetadataStore, version: int, new: ModelStatus) -> None:
    """Ask governance's public functions to move ``version`` to ``new``."""
    if new is AP:
        approve(store, NAME, version, reason="reviewed")
    elif new is AR:
        archive(store, NAME, version, reason="retired")
    else:  # no public verb: the check every verb goes through
        check_transition(
            f"{NAME}:{version}", status_of(store.get_model_version(NAME, version)), new
        )
        store.set_model_status(NAME, version, new, reason="by hand")


@pytest.mark.parametrize(("current", "new"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_governance_allows_exactly_what_the_table_says(
    store: SqlMetadataStore, current: ModelStatus, new: ModelStatus
) -> None:
    v = _at(store, current)
    events = len(store.list_events())
    if new in TRANSITIONS[current]:
        _apply(store, v, new)
        assert _status(store, v) == new
        assert len(store.list_events()) == events + 1
    else:
        with pytest.raises(RegistryError):
            _apply(store, v, new)
        assert _status(store, v) == current  # nothing changed
        assert len(store.list_events()) == events  # and nothing was recorded


def test_the_pair_walk_covers_every_pair() -> None:
    assert len(PAIRS) == len(ModelStatus) ** 2 == 16
    allowed = [(a, b) for a, b in PAIRS if b in TRANSITIONS[a]]
    assert allowed == [(C, AP), (C, RE), (C, AR), (AP, AR), (RE, AR)]


@pytest.mark.parametrize("status", list(ModelStatus))
def test_only_alias_holders_can_be_promoted(store: SqlMetadataStore, status: ModelStatus) -> None:
    """A candidate is approved on the way (promotion by hand); afterwards only statuses of
    ALIAS_HOLDERS hold the alias."""
    v = _at(store, status)
    if status in ALIAS_HOLDERS or AP in TRANSITIONS[status]:
        promote(store, NAME, v, alias="production", reason="ship")
        assert store.aliases(NAME) == {(NAME, "production"): v}
        assert _status(store, v) in ALIAS_HOLDERS
    else:
        with pytest.raises(RegistryError, match=f"a {status} version can never be given an alias"):
            promote(store, NAME, v, alias="production", reason="ship")
        assert store.aliases(NAME) == {}


# --- register ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [C, AP, RE])
def test_register_records_the_status_reason_and_event(
    store: SqlMetadataStore, status: ModelStatus
) -> None:
    record = register(
        store,
        NAME,
        digest=_digest(store),
        run_id=None,
        status=status,
        reason="gates passed",
        metrics={"f1": 0.8},
        tags={"candidate": "rf"},
    )
    assert (record.name, record.version, record.status, record.reason) == (
        NAME,
        1,
        status,
        "gates passed",
    )
    stored = store.get_model_version(NAME, 1)
    assert (stored.status, stored.reason, stored.metrics, stored.tags) == (
        status,
        "gates passed",
        {"f1": 0.8},
        {"candidate": "rf"},
    )
    actions = [e.action for e in store.list_events(entity=NAME)]
    assert actions == (["register", "reject"] if status is RE else ["register"])
    assert store.aliases(NAME) == {}


def test_register_as_archived_is_refused_and_registers_nothing(store: SqlMetadataStore) -> None:
    with pytest.raises(RegistryError) as caught:
        register(store, NAME, digest=_digest(store), run_id=None, status=AR, reason="x")
    assert str(caught.value) == f"{NAME}:new: a new version cannot be registered as archived"
    assert store.list_model_versions(NAME) == []
    assert store.list_events(entity=NAME) == []


@pytest.mark.parametrize("status", [C, RE])
def test_register_refuses_an_alias_for_a_version_that_may_not_hold_one(
    store: SqlMetadataStore, status: ModelStatus
) -> None:
    with pytest.raises(RegistryError) as caught:
        register(
            store,
            NAME,
            digest=_digest(store),
            run_id=None,
            status=status,
            reason="x",
            alias="production",
        )
    assert str(caught.value) == f"{NAME}: a {status} version cannot be given an alias"
    assert store.list_model_versions(NAME) == []
    assert store.aliases(NAME) == {}
    assert store.list_events(entity=NAME) == []


def test_register_approved_with_an_alias_moves_it_with_the_registration(
    store: SqlMetadataStore,
) -> None:
    v1 = _register(store, AP, reason="first", alias="production")
    v2 = _register(store, AP, reason="better", alias="production")
    assert (v1, v2) == (1, 2)
    assert store.aliases(NAME) == {(NAME, "production"): v2}
    history = [
        (h["action"], h["previous_version"], h["version"], h["reason"])
        for h in store.alias_history(NAME, "production")
    ]
    assert history == [("promote", None, 1, "first"), ("promote", 1, 2, "better")]
    assert [(e.action, e.entity) for e in store.list_events(entity=NAME)] == [
        ("register", f"{NAME}:1"),
        ("promote", f"{NAME}:1"),
        ("register", f"{NAME}:2"),
        ("promote", f"{NAME}:2"),
    ]
    assert rollback(store, NAME, alias="production", reason="regression") == governance.AliasMove(
        NAME, "production", 2, 1
    )


def test_a_failed_alias_move_leaves_no_version_behind(store: SqlMetadataStore) -> None:
    """The store checks the holders inside the registration's transaction: a refusal there
    rolls the version back too (governance.register refuses earlier; this is the backstop)."""
    digest = _digest(store)
    with pytest.raises(RegistryError, match="a candidate version cannot be given an alias"):
        store.register_model_version(
            NAME,
            digest=digest,
            run_id=None,
            status=C,
            reason="x",
            alias="production",
            holders=ALIAS_HOLDERS,
        )
    assert store.list_model_versions(NAME) == []
    assert store.aliases(NAME) == {}
    assert store.list_events(entity=NAME) == []
    assert _register(store, AP, alias="production") == 1  # the number was not used up


def test_register_keeps_a_typed_signature_as_json(store: SqlMetadataStore) -> None:
    signature = ModelSignature(
        columns={"age": ColumnSignature(dtype="int", min=0)},
        task="regression",
        target="price",
        schema_version=2,
    )
    record = register(
        store,
        NAME,
        digest=_digest(store),
        run_id=None,
        status=C,
        reason="x",
        signature=signature,
    )
    stored = store.get_model_version(NAME, record.version).signature
    assert stored == signature.to_json()
    assert stored is not None and stored["columns"]["age"]["min"] == 0
    assert ModelSignature.of(stored) == signature


# --- statuses this conveyor does not know --------------------------------------------------------


@pytest.mark.parametrize("status", list(ModelStatus))
def test_status_of_a_known_status_is_the_enum(store: SqlMetadataStore, status: ModelStatus) -> None:
    v = _at(store, status)
    assert status_of(store.get_model_version(NAME, v)) is status


def test_status_of_an_unknown_stored_status_is_a_registry_error(store: SqlMetadataStore) -> None:
    v = _register(store)
    store.set_model_status(NAME, v, "retired", reason="by a newer conveyor")
    with pytest.raises(RegistryError) as caught:
        status_of(store.get_model_version(NAME, v))
    assert str(caught.value) == f"{NAME}:{v} has unknown status 'retired'"


@pytest.mark.parametrize("verb", ["approve", "promote", "archive"])
def test_no_verb_acts_on_an_unknown_stored_status(store: SqlMetadataStore, verb: str) -> None:
    v = _register(store)
    store.set_model_status(NAME, v, "Approved", reason="typo by hand")
    with pytest.raises(RegistryError, match=f"{NAME}:{v} has unknown status 'Approved'"):
        if verb == "approve":
            approve(store, NAME, v, reason="ok")
        elif verb == "promote":
            promote(store, NAME, v, alias="production", reason="ok")
        else:
            archive(store, NAME, v, reason="ok")
    assert _status(store, v) == "Approved"
    assert store.aliases(NAME) == {}


# --- the verbs through the table -----------------------------------------------------------------


def test_archiving_an_archived_version_is_refused_already_archived(
    store: SqlMetadataStore,
) -> None:
    v = _register(store)
    archive(store, NAME, v, reason="retired")
    with pytest.raises(RegistryError) as caught:
        archive(store, NAME, v, reason="again")
    assert str(caught.value) == f"{NAME}:{v} is already archived"
    assert store.get_model_version(NAME, v).reason == "retired"
    assert [e.action for e in store.list_events(entity=NAME)] == ["register", "archive"]


@pytest.mark.parametrize("status", [AP, RE])
def test_approved_and_rejected_versions_can_be_archived(
    store: SqlMetadataStore, status: ModelStatus
) -> None:
    v = _register(store, status)
    archive(store, NAME, v, reason="retired")
    assert (_status(store, v), store.get_model_version(NAME, v).reason) == (AR, "retired")


def test_an_archived_version_cannot_be_approved(store: SqlMetadataStore) -> None:
    v = _register(store)
    archive(store, NAME, v, reason="retired")
    with pytest.raises(RegistryError) as caught:
        approve(store, NAME, v, reason="changed my mind")
    assert str(caught.value) == f"{NAME}:{v} is archived; only a candidate can be approved"
    assert _status(store, v) == AR


def test_a_version_registered_rejected_cannot_be_promoted_or_approved(
    store: SqlMetadataStore,
) -> None:
    v = _register(store, RE, reason="f1 below the gate")
    with pytest.raises(RegistryError) as caught:
        promote(store, NAME, v, alias="production", reason="anyway")
    assert str(caught.value) == (
        f"{NAME}:{v} is rejected (f1 below the gate); a rejected version can never be given "
        "an alias"
    )
    with pytest.raises(RegistryError, match="only a candidate can be approved"):
        approve(store, NAME, v, reason="anyway")
    assert (_status(store, v), store.aliases(NAME)) == (RE, {})


def test_a_rejected_version_is_no_rollback_target(store: SqlMetadataStore) -> None:
    v1 = _register(store, AP, alias="production")
    v2 = _register(store, RE, reason="lost to the champion")
    with pytest.raises(RegistryError, match="rejected"):
        rollback(store, NAME, alias="production", reason="x", to=v2)
    assert store.aliases(NAME) == {(NAME, "production"): v1}


def test_approving_an_approved_registration_says_already_approved(
    store: SqlMetadataStore,
) -> None:
    v = _register(store, AP, reason="gates passed")
    with pytest.raises(RegistryError) as caught:
        approve(store, NAME, v, reason="again")
    assert str(caught.value) == f"{NAME}:{v} is already approved"


def test_archiving_records_the_action_name_and_status(store: SqlMetadataStore) -> None:
    v = _register(store)
    archive(store, NAME, v, reason="retired")
    event = store.list_events(last=1)[0]
    assert (event.action, event.entity, event.reason, event.details) == (
        "archive",
        f"{NAME}:{v}",
        "retired",
        {"status": "archived"},
    )


# --- versions.signature_of: the stored signature of a version ------------------------------------


def _with_signature(store: SqlMetadataStore, signature: dict[str, Any] | None) -> int:
    return store.register_model_version(
        NAME, digest=_digest(store), run_id=None, signature=signature
    ).version


@pytest.mark.parametrize("signature", [None, {}, {"task": "classification", "target": "y"}])
def test_signature_of_a_version_without_one_is_none(
    store: SqlMetadataStore, signature: dict[str, Any] | None
) -> None:
    v = _with_signature(store, signature)
    assert signature_of(store.get_model_version(NAME, v)) is None


def test_signature_of_a_version_1_signature(store: SqlMetadataStore) -> None:
    v = _with_signature(
        store,
        {
            "columns": {"age": {"dtype": "int", "trained_dtype": "int64", "min": 0}},
            "task": None,
            "target": "churned",
        },
    )
    signature = signature_of(store.get_model_version(NAME, v))
    assert isinstance(signature, ModelSignature)
    assert (signature.schema_version, signature.task, signature.target) == (
        1,
        "classification",
        "churned",
    )
    assert signature.columns == {"age": ColumnSignature(dtype="int", trained_dtype="int64", min=0)}


def test_signature_of_a_version_2_signature(store: SqlMetadataStore) -> None:
    stored = ModelSignature(
        columns={"plan": ColumnSignature(dtype="category", allowed=["a", "b"])},
        task="regression",
        unused=["id"],
        schema_version=2,
    )
    v = _with_signature(store, stored.to_json())
    signature = signature_of(store.get_model_version(NAME, v))
    assert signature == stored
    assert signature is not None and signature.schema_version == 2
    assert signature.columns["plan"].allowed == ["a", "b"]


@pytest.mark.parametrize(
    ("signature", "problems"),
    [
        (
            {"columns": {"age": {"dtype": 3, "unit": "y"}}},
            "columns.age.dtype: Input should be a valid string; "
            "columns.age.unit: Extra inputs are not permitted",
        ),
        ({"columns": "age"}, "columns: Input should be a valid dictionary"),
        (
            {"columns": {"a": {}}, "task": "clustering", "schema_version": 2},
            "task: Input should be 'classification' or 'regression'",
        ),
    ],
)
def test_signature_of_a_malformed_signature_names_the_version(
    store: SqlMetadataStore, signature: dict[str, Any], problems: str
) -> None:
    _with_signature(store, None)  # the bad one is not version 1
    v = _with_signature(store, signature)
    with pytest.raises(ConfigError) as caught:
        signature_of(store.get_model_version(NAME, v))
    assert str(caught.value) == (f"{NAME}:{v}: its input signature cannot be served: {problems}")
    assert caught.value.__cause__ is None  # `from None`: no pydantic traceback for users


def test_signature_of_a_newer_signature_says_to_upgrade(store: SqlMetadataStore) -> None:
    v = _with_signature(store, {"columns": {"a": {}}, "schema_version": 3})
    with pytest.raises(ConfigError) as caught:
        signature_of(store.get_model_version(NAME, v))
    message = str(caught.value)
    assert message.startswith(f"{NAME}:{v}: its input signature cannot be served: ")
    assert "signature schema_version 3 is newer than this conveyor understands (2)" in message
    assert message.endswith("upgrade conveyor")


def test_signature_of_a_newer_signature_has_a_clean_message(store: SqlMetadataStore) -> None:
    v = _with_signature(store, {"columns": {"a": {}}, "schema_version": 3})
    with pytest.raises(ConfigError) as caught:
        signature_of(store.get_model_version(NAME, v))
    assert str(caught.value) == (
        f"{NAME}:{v}: its input signature cannot be served: signature schema_version 3 is "
        "newer than this conveyor understands (2); upgrade conveyor"
    )
