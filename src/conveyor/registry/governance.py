"""The registry as a governed state machine: approve, promote, roll back, archive.

Statuses: ``candidate`` (registered, waiting), ``approved`` (may hold an alias), ``rejected``
(gates failed or lost to the champion; can never hold an alias), ``archived`` (retired).
Every change is one transaction with an audit event (who, when, why).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import RegistryError
from conveyor.registry.versions import aliases_holding

if TYPE_CHECKING:
    from conveyor.store.metadata import ModelVersionRecord, SqlMetadataStore


@dataclass(frozen=True)
class AliasMove:
    """Where an alias pointed before and after a change."""

    name: str
    alias: str
    previous: int | None
    current: int


def approve(
    metadata: SqlMetadataStore, name: str, version: int, *, reason: str, alias: str | None = None
) -> ModelVersionRecord:
    """Approve a ``candidate`` (a person's decision, with a reason), then promote it to
    ``alias`` when given.

    Raises:
        RegistryError: the version is not a candidate, or no reason was given.
    """
    record = metadata.get_model_version(name, version)
    if not reason.strip():
        raise RegistryError("an approval needs a reason (--reason)")
    if record.status == "approved":
        raise RegistryError(f"{name}:{version} is already approved")
    if record.status != "candidate":
        raise RegistryError(
            f"{name}:{version} is {record.status}; only a candidate can be approved"
        )
    metadata.set_model_status(name, version, "approved", reason=reason, action="approve")
    if alias is not None:
        metadata.set_alias(name, alias, version, reason=reason)
    return metadata.get_model_version(name, version)


def promote(
    metadata: SqlMetadataStore,
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
    previous = metadata.set_alias(name, alias, version, reason=reason)
    return AliasMove(name, alias, previous, version)


def _may_hold_alias(
    metadata: SqlMetadataStore, name: str, version: int, *, reason: str, require_approval: bool
) -> None:
    """Refuse a version that may not hold an alias; approve a candidate when no approval step
    is required (the person moving the alias onto it is its approver)."""
    record = metadata.get_model_version(name, version)
    if record.status in ("rejected", "archived"):
        raise RegistryError(
            f"{name}:{version} is {record.status} ({record.reason or 'no reason recorded'}); "
            f"a {record.status} version can never be given an alias"
        )
    if record.status == "candidate":
        if require_approval:
            raise RegistryError(
                f"{name}:{version} needs approval first: conveyor models approve {name} "
                f'{version} --reason "..."'
            )
        metadata.set_model_status(name, version, "approved", reason=reason, action="approve")


def rollback(
    metadata: SqlMetadataStore,
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
    previous, current = metadata.rollback_alias(name, alias, to=to, reason=reason)
    return AliasMove(name, alias, previous, current)


def archive(metadata: SqlMetadataStore, name: str, version: int, *, reason: str) -> None:
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
    metadata.get_model_version(name, version)
    metadata.set_model_status(name, version, "archived", reason=reason, action="archive")
