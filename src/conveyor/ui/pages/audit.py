"""Audit: the append-only event log (who did what, when and why), newest first, with filters
and pages, and the same filtered log as CSV or JSON (``conveyor audit --csv | --json``)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from conveyor.ui.app import render, state_of
from conveyor.ui.auth import ReadSession  # noqa: TC001 - FastAPI reads it at runtime

if TYPE_CHECKING:
    from conveyor.store.metadata import AuditLog, EventRecord

router = APIRouter()
PAGE_SIZE = 50
ACTOR_BATCH = 1000  # newest events read at first when filtering by actor
KNOWN_ACTIONS = (
    "register", "reject", "approve", "promote", "rollback", "archive", "monitor.check",
    "alert.sent", "alert.suppressed", "retrain.start", "retrain.done", "retrain.skipped",
    "watch.cycle", "key.create", "key.revoke",
)  # fmt: skip
"""Offered as suggestions in the action filter (any action can be typed)."""
VERSION_ENTITY = re.compile(r"(?P<name>[A-Za-z0-9][\w.-]*):(?P<version>[0-9]+)")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet runs a cell starting with one of these as a formula (CSV injection)."""
COLUMNS = ("id", "at", "actor", "action", "entity", "reason", "details")


@dataclass(frozen=True)
class AuditFilter:
    """The filters of the audit page and its exports (empty: not filtered)."""

    entity: str = ""
    action: str = ""
    actor: str = ""
    since: str = ""
    since_ts: float | None = None  # ``since`` as a unix time

    def query(self, **extra: Any) -> str:
        """The filters (and ``extra``) as a query string, for links that keep them."""
        given = {k: getattr(self, k) for k in ("entity", "action", "actor", "since")}
        return urlencode({k: v for k, v in {**given, **extra}.items() if v})

    def matches_actor(self, actor: str) -> bool:
        """Exactly this actor, or every actor starting with the text before a final ``*``."""
        if not self.actor:
            return True
        if self.actor.endswith("*"):
            return actor.startswith(self.actor[:-1])
        return actor == self.actor


def _filter(entity: str = "", action: str = "", actor: str = "", since: str = "") -> AuditFilter:
    """The filters as given; ``since`` read as local time, as ``conveyor audit --since`` does.

    Raises:
        HTTPException: 400 naming the field when ``since`` is not an ISO date or date-time.
    """
    since = since.strip()
    start = None
    if since:
        try:
            start = dt.datetime.fromisoformat(since).timestamp()
        except ValueError:
            raise HTTPException(
                400, f"'since': {since!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
            ) from None
    return AuditFilter(entity.strip(), action.strip(), actor.strip(), since, start)


def events(log: AuditLog, where: AuditFilter, *, limit: int | None = None) -> list[EventRecord]:
    """Events matching ``where``, newest first (at most ``limit``).

    The store filters by entity, action and time; the actor is filtered here, reading ever
    larger batches of the newest events until ``limit`` match or the log is exhausted.
    """

    def newest(last: int | None) -> list[EventRecord]:
        found = log.list_events(
            since=where.since_ts,
            entity=where.entity or None,
            action=where.action or None,
            last=last,
        )
        return found[::-1]  # the store answers oldest first

    if not where.actor:
        return newest(limit)
    batch = None if limit is None else max(4 * limit, ACTOR_BATCH)
    while True:
        found = newest(batch)
        kept = [e for e in found if where.matches_actor(e.actor)]
        if batch is None or limit is None or len(kept) >= limit or len(found) < batch:
            return kept if limit is None else kept[:limit]
        batch *= 4


Filtered = Annotated[AuditFilter, Depends(_filter)]
"""The filters of a request's query (entity, action, actor, since), checked."""


@router.get("/audit")
def audit(
    request: Request,
    session: ReadSession,
    where: Filtered,
    page: int = 1,
) -> Response:
    """The event log, newest first, filtered, 50 a page."""
    page = max(page, 1)
    found = events(state_of(request).metadata, where, limit=PAGE_SIZE * page + 1)
    return render(
        request,
        "audit.html",
        events=found[PAGE_SIZE * (page - 1) : PAGE_SIZE * page],
        where=where,
        page=page,
        more=len(found) > PAGE_SIZE * page,
        known_actions=KNOWN_ACTIONS,
        version_entity=VERSION_ENTITY,
        details_text=details_text,
    )


@router.get("/audit.csv")
def audit_csv(
    request: Request,
    session: ReadSession,
    where: Filtered,
) -> Response:
    """The filtered log as CSV, oldest first (as ``conveyor audit --csv``), safe to open in a
    spreadsheet."""
    rows = [plain(e) for e in reversed(events(state_of(request).metadata, where))]
    return Response(
        to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


@router.get("/audit.json")
def audit_json(
    request: Request,
    session: ReadSession,
    where: Filtered,
) -> Response:
    """The filtered log as JSON, oldest first (as ``conveyor audit --json``)."""
    rows = [plain(e) for e in reversed(events(state_of(request).metadata, where))]
    return Response(
        json.dumps(rows, indent=1, sort_keys=False, default=str),
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="audit.json"'},
    )


def plain(event: EventRecord) -> dict[str, Any]:
    """One event as the exports write it: the time in ISO 8601 UTC."""
    return {
        "id": event.id,
        "at": dt.datetime.fromtimestamp(event.at, dt.UTC).isoformat(),
        "actor": event.actor,
        "action": event.action,
        "entity": event.entity,
        "reason": event.reason,
        "details": event.details,
    }


def to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV with every text cell quoted as needed and made inert for spreadsheets: a cell that
    starts with ``= + - @`` (or a tab or carriage return) gets a leading ``'``, so it is read
    as text, never run as a formula."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        cells = [*(row[c] for c in COLUMNS[:-1]), json.dumps(row["details"], sort_keys=True)]
        writer.writerow([_inert(c) for c in cells])
    return out.getvalue()


def _inert(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def details_text(details: dict[str, Any], limit: int = 160) -> tuple[str, str]:
    """An event's details as short text for the table, and in full for its tooltip."""
    if not details:
        return "", ""
    full = json.dumps(details, sort_keys=True, default=str)
    return (full if len(full) <= limit else full[: limit - 1] + "\u2026"), full
