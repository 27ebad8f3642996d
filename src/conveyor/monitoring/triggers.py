"""When to retrain: a cron schedule, new data at the source, or drift that persists.

The decisions read the audit log (``monitor.check``, ``retrain.start``, ``watch.cycle``
events), so they hold across restarts of ``conveyor watch`` and across machines sharing a store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from conveyor._config_values import CronSchedule, ValueProblem
from conveyor._text import short_list

if TYPE_CHECKING:
    from conveyor.store.metadata import AuditLog, EventRecord

Kind = Literal["schedule", "new_data", "drift"]
CHECK, RETRAIN, CYCLE = "monitor.check", "retrain.start", "watch.cycle"
RETRAIN_DONE = "retrain.done"


@dataclass(frozen=True)
class Trigger:
    """A reason to retrain."""

    kind: Kind
    reason: str


def _events(metadata: AuditLog, model: str, action: str, *, last: int = 1) -> list[EventRecord]:
    """The newest ``last`` events of one kind for ``model`` (filtered in SQL: the audit log
    grows by a few events per watch cycle)."""
    return metadata.list_events(entity=model, action=action, last=last)


def schedule_due(cron: str, *, last: float | None, now: float) -> bool:
    """Whether a cron time passed since ``last`` (the first cycle only starts the clock).

    Args:
        cron: a :class:`CronSchedule` (``monitoring.schedule``, checked at config load) or
            the text of one.
        last: when the clock started (None: it starts now).
        now: seconds since the epoch.

    Raises:
        ConfigError: not a valid cron expression.
    """
    from conveyor.errors import ConfigError

    try:
        schedule = CronSchedule.parse(cron)
    except ValueProblem as exc:
        raise ConfigError(exc.located("conveyor.yaml: monitoring.schedule")) from None
    if last is None:
        return False
    return schedule.next_after(last) <= now


def persisting_drift(metadata: AuditLog, model: str, *, checks: int) -> list[str] | None:
    """The columns drifted in every one of the last ``checks`` checks of ``model`` (any
    version), or None when no column did (a clean check, not enough data, or a different
    column each time - as chance false alarms would be - breaks the run)."""
    recent = _events(metadata, model, CHECK, last=checks)
    if len(recent) < checks:
        return None
    drifted = [set(e.details.get("drifted_columns") or ()) for e in recent]
    common = set.intersection(*drifted)
    return sorted(common) or None


def last_retrain(metadata: AuditLog, model: str) -> float | None:
    """When the watcher last started a retrain of ``model`` that finished (a ``retrain.start``
    followed by its ``retrain.done``). A retrain killed half-way does not count: the next
    cycle retries it instead of cooling down."""
    done = _events(metadata, model, RETRAIN_DONE)
    if not done:
        return None
    started = [
        e.at for e in metadata.list_events(entity=model, action=RETRAIN) if e.at <= done[-1].at
    ]
    return started[-1] if started else done[-1].at


def last_cycle(metadata: AuditLog, model: str) -> EventRecord | None:
    """The previous watch cycle of ``model`` (holds the source checksum it saw)."""
    cycles = _events(metadata, model, CYCLE)
    return cycles[-1] if cycles else None


def seen_checksum(metadata: AuditLog, model: str) -> str | None:
    """The source checksum the previous watch cycle recorded as seen."""
    previous = last_cycle(metadata, model)
    return previous.details.get("source_checksum") if previous else None


def decide(
    metadata: AuditLog,
    model: str,
    *,
    schedule: str | None,
    on_drift: bool,
    on_new_data: bool,
    persist: int,
    source_checksum: str | None,
    now: float | None = None,
) -> list[Trigger]:
    """Every trigger that fires now (before the cooldown is applied)."""
    now = time.time() if now is None else now
    previous = last_cycle(metadata, model)
    found: list[Trigger] = []
    if on_drift:
        columns = persisting_drift(metadata, model, checks=persist)
        if columns:
            found.append(
                Trigger(
                    "drift",
                    f"drift in {short_list(columns, quote=False)} for {persist} checks in a row",
                )
            )
    seen = seen_checksum(metadata, model)
    if on_new_data and source_checksum and seen and source_checksum != seen:
        found.append(Trigger("new_data", "new data at the source"))
    if schedule and schedule_due(schedule, last=previous.at if previous else None, now=now):
        found.append(Trigger("schedule", f"schedule {schedule}"))
    return found


def cooling_down(
    metadata: AuditLog, model: str, *, minutes: float, now: float | None = None
) -> float | None:
    """Seconds left before the next retrain may start (None when it may start now)."""
    now = time.time() if now is None else now
    last = last_retrain(metadata, model)
    if last is None:
        return None
    left = last + minutes * 60 - now
    return left if left > 0 else None
