"""Models: every registered version with its status, metrics, gates and decision; aliases with
their history; and the governed actions (approve, promote, roll back, archive).

The actions call :mod:`conveyor.registry.governance`, the functions ``conveyor models approve |
promote | rollback | archive`` call, with the signed-in user as the actor, so the UI writes the
same audit events as the CLI and is refused by the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Protocol
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from conveyor._text import fmt_time
from conveyor.errors import ArtifactError, ConveyorError, RegistryError
from conveyor.ui.app import render, state_of
from conveyor.ui.auth import AdminAction, ReadSession  # noqa: TC001 - FastAPI reads them

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from contextlib import AbstractContextManager

    from starlette.responses import Response

    from conveyor.contracts import GateReport
    from conveyor.registry.lineage import ModelLineage
    from conveyor.store.metadata import ArtifactRef, EventRecord, ModelVersionRecord
    from conveyor.ui.app import UiState

router = APIRouter()
SHOWN_PER_MODEL = 5  # per model on /models, each reading its gate report (the model page: all)
PAGE_SIZE = 25
PREFERRED_METRICS = ("f1", "f1_macro", "roc_auc", "accuracy", "rmse", "mae", "r2")
DONE = {"approve", "promote", "rollback", "archive"}
DONE_LOOKBACK = 20  # events searched for the one an action just wrote
Reason = Annotated[str, Form()]


class _HasMetrics(Protocol):
    @property
    def metrics(self) -> dict[str, float]: ...


@dataclass
class ModelGroup:
    """One model name: its newest versions, where its aliases point, counts by status."""

    name: str
    versions: list[ModelVersionRecord]
    total: int
    aliases: dict[str, int]
    by_status: dict[str, int] = field(default_factory=dict)
    metric_keys: list[str] = field(default_factory=list)
    gates: dict[int, GateReport | None] = field(default_factory=dict)

    def held_by(self, version: int) -> list[str]:
        """The aliases pointing at ``version``."""
        return sorted(a for a, v in self.aliases.items() if v == version)


# --- pages --------------------------------------------------------------------------------------


@router.get("/models")
def models_list(request: Request, session: ReadSession) -> Response:
    """Every model name with its newest versions (gates included) and aliases."""
    metadata = state_of(request).metadata
    aliases = metadata.aliases()
    counts = metadata.model_version_counts()
    groups: dict[str, ModelGroup] = {}
    for v in metadata.newest_model_versions(SHOWN_PER_MODEL):  # newest first within a name
        by_status = counts.get(v.name, {})
        group = groups.setdefault(
            v.name, ModelGroup(v.name, [], sum(by_status.values()), {}, dict(by_status))
        )
        group.versions.append(v)
    for (name, alias), version in aliases.items():
        if name in groups:
            groups[name].aliases[alias] = version
    state = state_of(request)
    shown = [v for group in groups.values() for v in group.versions]
    reports = state.metadata.run_outputs([v.run_id for v in shown if v.run_id], "gates")
    for group in groups.values():
        group.metric_keys = metric_keys(group.versions)
        group.gates = {
            v.version: _gate_report(state, reports.get(v.run_id or "")) for v in group.versions
        }
    return render(
        request,
        "models.html",
        models=list(groups.values()),
        shown_per_model=SHOWN_PER_MODEL,
    )


@router.get("/models/{name}")
def model_page(
    request: Request, session: ReadSession, name: str, page: int = 1, done: int = 0
) -> Response:
    """One model: its aliases, their history as a timeline, every version (paged)."""
    return _model_page(request, name, page=page, notice=done_message(request, name, done))


@router.get("/models/{name}/{version}")
def version_page(
    request: Request, session: ReadSession, name: str, version: int, done: int = 0
) -> Response:
    """One version: status and reason, metrics, gates, decision, candidates, history, actions."""
    return _version_page(request, name, version, notice=done_message(request, name, done))


# --- actions ------------------------------------------------------------------------------------


@router.post("/models/{name}/{version}/approve")
def approve(
    request: Request,
    session: AdminAction,
    name: str,
    version: int,
    reason: Reason = "",
    alias: Annotated[str, Form()] = "",
) -> Response:
    """``conveyor models approve NAME VER --reason R [--alias A | --no-promote]``."""
    from conveyor.registry import governance

    def act() -> None:
        target = alias.strip() or None
        governance.approve(
            state_of(request).metadata, name, version, reason=reason.strip(), alias=target
        )

    return _act(request, session.actor, name, version, "approve", reason, act)


@router.post("/models/{name}/{version}/promote")
def promote(
    request: Request,
    session: AdminAction,
    name: str,
    version: int,
    reason: Reason = "",
    alias: Annotated[str, Form()] = "",
) -> Response:
    """``conveyor models promote NAME VER --alias A --reason R``."""
    from conveyor.registry import governance

    state = state_of(request)
    default_alias, require_approval = policy(state)

    def act() -> None:
        governance.promote(
            state.metadata,
            name,
            version,
            alias=alias.strip() or default_alias,
            reason=reason.strip(),
            require_approval=require_approval,
        )

    return _act(request, session.actor, name, version, "promote", reason, act)


@router.post("/models/{name}/{version}/archive")
def archive(
    request: Request, session: AdminAction, name: str, version: int, reason: Reason = ""
) -> Response:
    """``conveyor models archive NAME VER --reason R``."""
    from conveyor.registry import governance

    def act() -> None:
        governance.archive(state_of(request).metadata, name, version, reason=reason.strip())

    return _act(request, session.actor, name, version, "archive", reason, act)


@router.post("/models/{name}/rollback")
def rollback(
    request: Request,
    session: AdminAction,
    name: str,
    reason: Reason = "",
    alias: Annotated[str, Form()] = "",
    to: Annotated[str, Form()] = "",
) -> Response:
    """``conveyor models rollback NAME --alias A [--to VER] --reason R``."""
    from conveyor.registry import governance

    state = state_of(request)
    default_alias, require_approval = policy(state)
    target = alias.strip() or default_alias
    if to.strip() and not (to.strip().isdigit() and int(to) >= 1):
        error = f"'to': {to!r} is not a version number (1, 2, ...)"
        return _model_page(request, name, error=error, status_code=400)

    def act() -> None:
        governance.rollback(
            state.metadata,
            name,
            alias=target,
            reason=reason.strip(),
            to=int(to) if to.strip() else None,
            require_approval=require_approval,
        )

    if not reason.strip():
        error = "Rollback needs a reason (kept in the audit log): say why"
        return _model_page(request, name, error=error, status_code=400)
    try:
        with acting_as(session.actor):
            act()
    except LookupError as exc:
        return _model_page(request, name, error=str(exc), status_code=404)
    except RegistryError as exc:
        return _model_page(request, name, error=str(exc))
    except ConveyorError as exc:  # the store failed: nothing was refused, nothing recorded
        raise HTTPException(503, f"the rollback could not be recorded: {exc}") from None
    query = urlencode({"done": _newest_event(request, name, "rollback")})
    return RedirectResponse(f"/models/{name}?{query}", status_code=303)


def _act(
    request: Request,
    actor: str,
    name: str,
    version: int,
    action: str,
    reason: str,
    act: Callable[[], None],
) -> Response:
    """Run a governed action as ``actor``; back to the version's page with what happened, or
    the page again with the registry's refusal (409) in words."""
    if not reason.strip():
        return _version_page(
            request,
            name,
            version,
            error=f"{action.capitalize()} needs a reason (kept in the audit log): say why",
            status_code=400,
        )
    try:
        with acting_as(actor):
            act()
    except LookupError as exc:  # no such version: the governance message names it
        raise HTTPException(404, str(exc)) from None
    except RegistryError as exc:
        return _version_page(request, name, version, error=str(exc), status_code=409)
    except ConveyorError as exc:  # the store failed: nothing was refused, nothing recorded
        raise HTTPException(503, f"the {action} could not be recorded: {exc}") from None
    query = urlencode({"done": _newest_event(request, name, action)})
    return RedirectResponse(f"/models/{name}/{version}?{query}", status_code=303)


def acting_as(actor: str) -> AbstractContextManager[None]:
    """Audit events written inside this block name ``actor`` (``ui:KEYNAME``): the store's
    context variable, so concurrent requests each keep their own actor."""
    from conveyor.store.metadata import acting_as as store_acting_as

    return store_acting_as(actor)


def policy(state: UiState) -> tuple[str, bool]:
    """``registry.promote`` of conveyor.yaml: the default alias and whether a version needs an
    approval before it may be promoted.

    Read from the state (``promote_alias``, ``require_approval``); a state that does not carry
    them gets ``production`` and, to be safe, an approval step (a promotion of a candidate is
    then refused with the registry's message, never approved in passing).
    """
    return state.promote_alias, state.require_approval


# --- page assembly ------------------------------------------------------------------------------


def _model_page(
    request: Request,
    name: str,
    *,
    page: int = 1,
    notice: str | None = None,
    error: str | None = None,
    status_code: int | None = None,
) -> Response:
    state = state_of(request)
    metadata = state.metadata
    versions = metadata.list_model_versions(name)
    if not versions:
        raise HTTPException(
            404, f"no model named {name!r}: see the models page for those there are"
        )
    page = max(page, 1)
    shown = versions[PAGE_SIZE * (page - 1) : PAGE_SIZE * page]
    aliases = {a: v for (_, a), v in metadata.aliases(name).items()}
    history = metadata.alias_history(name)
    return render(
        request,
        "model.html",
        status_code=status_code or (409 if error else 200),
        name=name,
        versions=shown,
        gates={v.version: gates_of(state, v) for v in shown},
        total=len(versions),
        page=page,
        more=len(versions) > PAGE_SIZE * page,
        aliases=sorted(aliases.items()),
        held=_held(aliases),
        last_move={a: _last(history, a) for a in aliases},
        timeline=history[::-1],
        metric_keys=metric_keys(versions),
        default_alias=policy(state)[0],
        notice=notice,
        error=error,
        version=None,
    )


def _version_page(
    request: Request,
    name: str,
    version: int,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    from conveyor.registry.lineage import model_lineage

    state = state_of(request)
    metadata = state.metadata
    problem = None
    try:
        found = model_lineage(metadata, state.artifacts, f"{name}:{version}")
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None
    except ArtifactError as exc:  # the version itself is in the store; its reports are not
        found, problem = None, f"its evaluation reports cannot be read: {exc}"
    record = found.model if found else metadata.get_model_version(name, version)
    aliases = {a: v for (_, a), v in metadata.aliases(name).items()}
    events = metadata.list_events(entity=f"{name}:{version}", last=50)
    history = version_history(events, found.alias_history if found else [], version)
    return render(
        request,
        "model.html",
        status_code=status_code,
        name=name,
        version=record,
        lineage=found,
        problem=problem,
        aliases=sorted(aliases.items()),
        held=_held(aliases),
        history=history,
        candidate_keys=metric_keys_of(found),
        default_alias=policy(state)[0],
        may=allowed_actions(record.status),
        notice=notice,
        error=error,
    )


@dataclass(frozen=True)
class HistoryItem:
    """One line of a version's history: an audit event, or an alias moving off the version."""

    at: float
    action: str
    actor: str
    reason: str | None
    note: str = ""


def version_history(
    events: list[EventRecord], moves: list[dict[str, Any]], version: int
) -> list[HistoryItem]:
    """The version's own events and the alias moves that took an alias away from it (those
    are events of the version the alias moved to), newest first."""
    items = [
        HistoryItem(e.at, e.action, e.actor, e.reason, _alias_note(e.details.get("alias")))
        for e in events
    ]
    items += [
        HistoryItem(
            h["at"], h["action"], h["actor"], h["reason"], f"@{h['alias']} moved to v{h['version']}"
        )
        for h in moves
        if h["previous_version"] == version and h["version"] != version
    ]
    return sorted(items, key=lambda i: i.at, reverse=True)


def _alias_note(alias: Any) -> str:
    return f"@{alias}" if isinstance(alias, str) and alias else ""


def metric_keys_of(found: ModelLineage | None) -> list[str]:
    """The metric columns of the candidates table: the decision's metric first."""
    if found is None or not found.candidates:
        return []
    metrics = {k: 0.0 for c in found.candidates for k in c.metrics}
    first = [found.decision.metric] if found.decision and found.decision.metric in metrics else []
    rest = [k for k in metric_keys([_Metrics(metrics)], limit=5) if k not in first]
    return (first + rest)[:5]


@dataclass(frozen=True)
class _Metrics:
    metrics: dict[str, float]


def allowed_actions(status: str) -> set[str]:
    """The buttons worth showing for a version in ``status`` (the registry decides anyway)."""
    from conveyor.contracts import ModelStatus
    from conveyor.registry.governance import ALIAS_HOLDERS, TRANSITIONS

    try:
        current = ModelStatus(status)
    except ValueError:
        return set()
    may = {"archive"} if ModelStatus.ARCHIVED in TRANSITIONS[current] else set()
    if ModelStatus.APPROVED in TRANSITIONS[current]:
        may |= {"approve", "promote"}
    if current in ALIAS_HOLDERS:
        may |= {"promote", "rollback"}
    return may


def gates_of(state: UiState, record: ModelVersionRecord) -> GateReport | None:
    """The gate report of the run that made ``record`` (None: no run, or no gates step)."""
    if not record.run_id:
        return None
    return _gate_report(
        state, state.metadata.run_outputs([record.run_id], "gates").get(record.run_id)
    )


def _gate_report(state: UiState, ref: ArtifactRef | None) -> GateReport | None:
    """A gate report by its reference (None: none recorded, or unreadable)."""
    from conveyor.contracts import GateReport

    if ref is None:
        return None
    try:
        return GateReport.of(state.artifacts.get(ref.digest, ref.kind))
    except ConveyorError:
        return None


def metric_keys(versions: Sequence[_HasMetrics], *, limit: int = 4) -> list[str]:
    """The metrics worth a column: the usual headline ones the versions have, else the first
    few by name."""
    seen: set[str] = set()
    for v in versions:
        seen.update(v.metrics)
    preferred = [k for k in PREFERRED_METRICS if k in seen]
    return (preferred or sorted(seen))[:limit]


def _held(aliases: dict[str, int]) -> dict[int, list[str]]:
    held: dict[int, list[str]] = {}
    for alias, version in sorted(aliases.items()):
        held.setdefault(version, []).append(alias)
    return held


def _last(history: list[dict[str, Any]], alias: str) -> dict[str, Any] | None:
    moves = [h for h in history if h["alias"] == alias]
    return moves[-1] if moves else None


def _newest_event(request: Request, name: str, action: str) -> int:
    """The id of the audit event an action just wrote (0 when none is found)."""
    found = state_of(request).metadata.list_events(entity=name, action=action, last=1)
    return found[-1].id if found else 0


def done_message(request: Request, name: str, event_id: int) -> str | None:
    """What an action did, in the words of its audit event (``?done=EVENT_ID`` after the
    redirect): read from the log, so a crafted link cannot make the page claim anything the
    log does not hold."""
    if event_id < 1:
        return None
    recent = state_of(request).metadata.list_events(entity=name, last=DONE_LOOKBACK)
    event = next((e for e in recent if e.id == event_id and e.action in DONE), None)
    if event is None:
        return None
    alias = event.details.get("alias")
    where = f" (@{alias})" if isinstance(alias, str) and alias else ""
    return (
        f"Done: {event.action} of {event.entity}{where} by {event.actor}"
        f" at {fmt_time(event.at)}, recorded in the audit log."
    )
