"""Rollback over a history of three and more promotions, on every metadata store backend:
each rollback goes back one promotion, ``to`` picks the version, and approvals in between
(versions that wait for one, approvals that promote and approvals that do not) count only
when they move the alias."""

from __future__ import annotations

import pytest

from conveyor.errors import RegistryError
from conveyor.registry import governance
from conveyor.store.metadata import ArtifactRef, SqlMetadataStore
from tests.contracts import test_metadata_store as contract

# The contract suite's fixtures: SQLite file, SQLite in memory and PostgreSQL (``service``).
backend = contract.backend
store = contract.store

NAME = "fraud"
ALIAS = "production"


def _register(store: SqlMetadataStore, count: int) -> list[int]:
    """``count`` new candidate versions of NAME (their artifacts recorded first)."""
    versions = []
    for _ in range(count):
        label = f"model-{len(store.list_model_versions(NAME)) + 1}"
        digest = label.encode().hex().ljust(64, "0")[:64]
        store.record_artifacts([ArtifactRef(label, digest, "pickle", 10)])
        versions.append(store.register_model_version(NAME, digest=digest, run_id=None).version)
    return versions


def _promote_each(store: SqlMetadataStore, versions: list[int]) -> None:
    for version in versions:
        governance.promote(store, NAME, version, alias=ALIAS, reason=f"ship v{version}")


def _rollback(store: SqlMetadataStore, *, to: int | None = None) -> tuple[int | None, int]:
    move = governance.rollback(store, NAME, alias=ALIAS, reason="regression", to=to)
    assert store.get_alias(NAME, ALIAS) == move.current
    return move.previous, move.current


def test_each_rollback_goes_back_one_promotion(store: SqlMetadataStore) -> None:
    _promote_each(store, _register(store, 3))
    assert store.get_alias(NAME, ALIAS) == 3

    assert _rollback(store) == (3, 2)  # the previous version, not the oldest
    assert _rollback(store) == (2, 1)
    with pytest.raises(RegistryError, match="no earlier version"):
        _rollback(store)
    assert store.get_alias(NAME, ALIAS) == 1
    moves = [(h["action"], h["previous_version"], h["version"]) for h in store.alias_history(NAME)]
    assert moves[-2:] == [("rollback", 3, 2), ("rollback", 2, 1)]


def test_a_promotion_after_a_rollback_is_the_one_the_next_rollback_undoes(
    store: SqlMetadataStore,
) -> None:
    _promote_each(store, _register(store, 4))
    assert _rollback(store) == (4, 3)
    _promote_each(store, [1])  # a hand-picked old version goes back on top
    assert _rollback(store) == (1, 3)
    assert _rollback(store) == (3, 2)


def test_rollback_to_an_explicit_version_skips_the_ones_between(
    store: SqlMetadataStore,
) -> None:
    _promote_each(store, _register(store, 4))

    assert _rollback(store, to=2) == (4, 2)  # without `to` it would be v3
    assert _rollback(store) == (2, 1)  # and the history continues from v2
    assert _rollback(store, to=4) == (1, 4)  # `to` goes forward too
    with pytest.raises(RegistryError, match="already points at v4"):
        _rollback(store, to=4)


def test_rollback_to_the_oldest_version_of_many(store: SqlMetadataStore) -> None:
    _promote_each(store, _register(store, 5))
    assert _rollback(store, to=1) == (5, 1)
    with pytest.raises(RegistryError, match="no earlier version"):
        _rollback(store)  # v1 was the first promotion: nothing before it


def test_rollback_across_approvals_returns_to_the_previously_promoted_version(
    store: SqlMetadataStore,
) -> None:
    """Under ``require_approval``: v1 and v2 are approved and promoted, v3 is approved without
    promotion and waits, v4 waits unapproved, v5 is approved and promoted in one step. Only the
    promotions are history: rolling back from v5 goes to v2, then to v1, never to v3 or v4."""
    v1, v2, v3, v4, v5 = _register(store, 5)
    for version in (v1, v2):
        governance.approve(store, NAME, version, reason=f"reviewed v{version}")
        governance.promote(store, NAME, version, alias=ALIAS, reason="ship", require_approval=True)
    governance.approve(store, NAME, v3, reason="reviewed, not shipped yet")  # no alias
    with pytest.raises(RegistryError, match="needs approval first"):
        governance.promote(store, NAME, v4, alias=ALIAS, reason="ship", require_approval=True)
    governance.approve(store, NAME, v5, reason="reviewed and shipped", alias=ALIAS)
    assert store.get_alias(NAME, ALIAS) == v5

    assert _rollback(store) == (v5, v2)
    assert _rollback(store) == (v2, v1)
    statuses = {m.version: m.status for m in store.list_model_versions(NAME)}
    assert statuses == {
        v1: "approved",
        v2: "approved",
        v3: "approved",
        v4: "candidate",
        v5: "approved",  # rolled back from, still approved: it may be promoted again
    }
    assert _rollback(store, to=v3) == (v1, v3)  # an approved version never promoted


def test_rollback_never_lands_on_a_version_rejected_or_archived_since(
    store: SqlMetadataStore,
) -> None:
    _promote_each(store, _register(store, 3))
    governance.rollback(store, NAME, alias=ALIAS, reason="regression")  # v3 -> v2
    governance.archive(store, NAME, 3, reason="retired")
    with pytest.raises(RegistryError, match="archived"):
        _rollback(store, to=3)
    store.set_model_status(NAME, 1, "rejected", reason="found a leak")
    with pytest.raises(RegistryError, match="rejected"):
        _rollback(store)
    assert store.get_alias(NAME, ALIAS) == 2


def test_rollback_to_a_candidate_is_no_way_around_the_approval_step(
    store: SqlMetadataStore,
) -> None:
    v1, v2, v3 = _register(store, 3)
    for version in (v1, v2):
        governance.approve(store, NAME, version, reason="reviewed", alias=ALIAS)
    with pytest.raises(RegistryError, match="needs approval first"):
        governance.rollback(
            store, NAME, alias=ALIAS, reason="regression", to=v3, require_approval=True
        )
    assert store.get_alias(NAME, ALIAS) == v2
    assert store.get_model_version(NAME, v3).status == "candidate"


def test_rollback_to_a_candidate_without_an_approval_step_approves_it(
    store: SqlMetadataStore,
) -> None:
    """As a promotion by hand does: the person moving the alias onto it is its approver."""
    v1, v2, v3 = _register(store, 3)
    _promote_each(store, [v1, v2])
    assert _rollback(store, to=v3) == (v2, v3)
    record = store.get_model_version(NAME, v3)
    assert (record.status, record.reason) == ("approved", "regression")
