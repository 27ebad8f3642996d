"""The registry as a governed state machine: register, approve, promote, roll back, archive.

Statuses (:class:`~conveyor.contracts.ModelStatus`): ``candidate`` (registered, waiting),
``approved`` (may hold an alias), ``rejected`` (gates failed or lost to the champion; can never
hold an alias), ``archived`` (retired). :data:`TRANSITIONS` is the one table of allowed changes
and :data:`ALIAS_HOLDERS` the statuses that may hold an alias; every change goes through this
module (the train line too) and is one transaction with an audit event (who, when, why).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.contracts import ModelStatus
from conveyor.errors import RegistryError
from conveyor.registry.versions import aliases_holding

if TYPE_CHECKING:
    from collections.abc import Mapping

    from conveyor.contracts import ModelSignature
    from conveyor.store.metadata import ModelVersionRecord, RegistryStore

_C, _AP, _RE, _AR = (
    ModelStatus.CANDIDATE,
    ModelStatus.APPROVED,
    ModelStatus.REJECTED,
    ModelStatus.ARCHIVED,
)
TRANSITIONS: dict[ModelStatus | None, frozenset[ModelStatus]] = {
    None: frozenset({_C, _AP, _RE}),  # registration
    _C: frozenset({_AP, _RE, _AR}),
    _AP: frozenset({_AR}),
    _RE: frozenset({_AR}),
    _AR: frozenset(),
}
"""Status -> the statuses it may change to (``None``: a new version)."""
ALIAS_HOLDERS = frozenset({_AP})
"""Statuses that may hold an alias (checked by the store in the transaction that moves it)."""


def check_transition(entity: str, current: ModelStatus | None, new: ModelStatus) -> None:
    """Refuse a change :data:`TRANSITIONS` does not allow.

    Raises:
        RegistryError: ``current`` may not become ``new``.
    """
    if new in TRANSITIONS[current]:
        return
    if current is None:
        raise RegistryError(f"{entity}: a new version cannot be registered as {new}")
    if current == new:
        raise RegistryError(f"{entity} is already {new}")
    allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing"
    raise RegistryError(f"{entity} is {current}; a {current} version can become {allowed}")


def register(
    metadata: RegistryStore,
    name: str,
    *,
    digest: str,
    run_id: str | None,
    status: ModelStatus,
    reason: str,
    alias: str | None = None,
    dataset: str | None = None,
    metrics: Mapping[str, float] | None = None,
    signature: ModelSignature | None = None,
    tags: Mapping[str, str] | None = None,
    git_commit: str | None = None,
    config_hash: str | None = None,
) -> ModelVersionRecord:
    """Register the next version of ``name`` as ``status``, and point ``alias`` at it in the
    same transaction when given (only a status of :data:`ALIAS_HOLDERS` may hold one).

    Raises:
        RegistryError: a status a new version cannot have, or an alias for one that may not
            hold it.
    """
    check_transition(f"{name}:new", None, status)
    if alias is not None and status not in ALIAS_HOLDERS:
        raise RegistryError(f"{name}: a {status} version cannot be given an alias")
    return metadata.register_model_version(
        name,
        digest=digest,
        run_id=run_id,
        dataset=dataset,
        metrics=metrics,
        signature=signature,
        tags=tags,
        git_commit=git_commit,
        config_hash=config_hash,
        status=status,
        reason=reason,
        alias=alias,
        holders=ALIAS_HOLDERS,
    )


def status_of(record: ModelVersionRecord) -> ModelStatus:
    """A stored version's status as the lifecycle enum.

    Raises:
        RegistryError: the store holds a status this conveyor does not know.
    """
    try:
        return ModelStatus(record.status)
    except ValueError:
        raise RegistryError(
            f"{record.name}:{record.version} has unknown status {record.status!r}"
        ) from None


def _change(
    metadata: RegistryStore,
    record: ModelVersionRecord,
    new: ModelStatus,
    *,
    reason: str,
    action: str,
) -> None:
    check_transition(f"{record.name}:{record.version}", status_of(record), new)
    metadata.set_model_status(record.name, record.version, new, reason=reason, action=action)


@dataclass(frozen=True)
class AliasMove:
    """Where an alias pointed before and after a change."""

    name: str
    alias: str
    previous: int | None
    current: int


def approve(
    metadata: RegistryStore, name: str, version: int, *, reason: str, alias: str | None = None
) -> ModelVersionRecord:
    """Approve a ``candidate`` (a person's decision, with a reason), then promote it to
    ``alias`` when given.

    Raises:
        RegistryError: the version is not a candidate, or no reason was given.
    """
    record = metadata.get_model_version(name, version)
    if not reason.strip():
        raise RegistryError("an approval needs a reason (--reason)")
    status = status_of(record)
    if status is ModelStatus.APPROVED:
        raise RegistryError(f"{name}:{version} is already approved")
    if status is not ModelStatus.CANDIDATE:
        raise RegistryError(f"{name}:{version} is {status}; only a candidate can be approved")
    _change(metadata, record, ModelStatus.APPROVED, reason=reason, action="approve")
    if alias is not None:
        metadata.set_alias(name, alias, version, reason=reason, holders=ALIAS_HOLDERS)
    return metadata.get_model_version(name, version)


def promote(
    metadata: RegistryStore,
    name: str,
    version: int,
    *,
    alias: str,
    reason: str,
    require_approval: bool = False,
) -> AliasMove:
    """Point ``name@alias`` at ``version``.

    Under ``require_approval`` only an approved version may be promoted; otherwise promoting a
    candidate by hand approves it (the person promoting is its approver).

    Raises:
        RegistryError: rejected or archived version, or approval required and missing.
    """
    _may_hold_alias(metadata, name, version, reason=reason, require_approval=require_approval)
    previous = metadata.set_alias(name, alias, version, reason=reason, holders=ALIAS_HOLDERS)
    return AliasMove(name, alias, previous, version)


def _may_hold_alias(
    metadata: RegistryStore, name: str, version: int, *, reason: str, require_approval: bool
) -> None:
    """Refuse a version that may not hold an alias; approve a candidate when no approval step
    is required (the person moving the alias onto it is its approver)."""
    record = metadata.get_model_version(name, version)
    status = status_of(record)
    if status is ModelStatus.CANDIDATE:
        if require_approval:
            raise RegistryError(
                f"{name}:{version} needs approval first: conveyor models approve {name} "
                f'{version} --reason "..."'
            )
        _change(metadata, record, ModelStatus.APPROVED, reason=reason, action="approve")
    elif status not in ALIAS_HOLDERS:
        raise RegistryError(
            f"{name}:{version} is {status} ({record.reason or 'no reason recorded'}); "
            f"a {status} version can never be given an alias"
        )


def rollback(
    metadata: RegistryStore,
    name: str,
    *,
    alias: str,
    reason: str,
    to: int | None = None,
    require_approval: bool = False,
) -> AliasMove:
    """Move ``name@alias`` back to the version before the current one (or ``to``).

    ``to`` obeys the rules of a promotion: never a rejected or archived version, and under
    ``require_approval`` never a candidate (a rollback is no way around the approval step).
    """
    if to is not None:
        _may_hold_alias(metadata, name, to, reason=reason, require_approval=require_approval)
    previous, current = metadata.rollback_alias(
        name, alias, to=to, reason=reason, holders=ALIAS_HOLDERS
    )
    return AliasMove(name, alias, previous, current)


def archive(metadata: RegistryStore, name: str, version: int, *, reason: str) -> None:
    """Retire a version; one that an alias still points at must be moved off first.

    Raises:
        RegistryError: an alias points at the version.
    """
    held = aliases_holding(metadata, name, version)
    if held:
        raise RegistryError(
            f"{name}:{version} is {name}@{', @'.join(held)}; move the alias first "
            "(promote another version or roll back)"
        )
    record = metadata.get_model_version(name, version)
    _change(metadata, record, ModelStatus.ARCHIVED, reason=reason, action="archive")
