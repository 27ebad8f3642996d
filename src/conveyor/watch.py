"""The closed loop: check drift, alert, and retrain when a trigger fires (``conveyor watch``).

One cycle: (1) a monitoring check of the served model on its prediction log, with alerts;
(2) the triggers (schedule, new data at the source, drift persisting for N checks); (3) unless
cooling down, the ``train`` line on the source's latest data, whose gates and
champion/challenger decide, and the registry promotes per policy. Every step is an audit
event carrying its cause (``retrain.start``: "retrained because drift in prevailing_wage ...",
``retrain.done`` with the decision).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.contracts import Registration
from conveyor.errors import ConveyorError
from conveyor.monitoring import triggers

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from conveyor.monitoring.drift import DriftSettings
    from conveyor.monitoring.monitor import CheckResult
    from conveyor.project import Project

log = logging.getLogger("conveyor.watch")


@dataclass
class CycleResult:
    """What one cycle saw and did."""

    model: str
    check: CheckResult | None = None
    check_error: str | None = None
    triggers: list[triggers.Trigger] = field(default_factory=list)
    cooldown_left: float | None = None
    retrained: bool = False
    run_id: str | None = None
    run_status: str | None = None
    decision: Registration | None = None
    """The retrain's registration (its version, status and why), when it got that far."""

    @property
    def cause(self) -> str:
        """``drift in prevailing_wage, continent for 2 checks in a row; new data at the source``."""
        return "; ".join(t.reason for t in self.triggers)


def drift_settings(project: Project) -> DriftSettings:
    """``monitoring.drift`` as detector settings (the config model itself: no copied defaults)."""
    return project.config.monitoring.drift


def run_check(project: Project, ref: str, **kwargs: Any) -> CheckResult:
    """One monitoring check with the project's settings and alert channels."""
    from conveyor.monitoring.alerts import channels_from_config
    from conveyor.monitoring.monitor import check

    mon = project.config.monitoring
    kwargs.setdefault("window_seconds", mon.window_hours * 3600)
    kwargs.setdefault("channels", channels_from_config(mon.alerts))
    return check(
        project.metadata,
        project.artifacts,
        ref,
        settings=drift_settings(project),
        alert_cooldown_seconds=mon.alert_cooldown_minutes * 60,
        **kwargs,
    )


def cycle(
    project: Project,
    *,
    model: str | None = None,
    on_retrain: Callable[[str], None] | None = None,
    window_seconds: float | None = None,
) -> CycleResult:
    """One watch cycle (see the module docstring); the check reads the prediction log of the
    last ``window_seconds`` (default ``monitoring.window_hours``)."""
    from conveyor.data.sources import file_checksum
    from conveyor.registry.versions import parse_ref

    ref = project.model_ref(model)
    name, _ = parse_ref(ref)
    mon, metadata = project.config.monitoring, project.metadata
    result = CycleResult(model=name)
    try:
        extra = {} if window_seconds is None else {"window_seconds": window_seconds}
        result.check = run_check(project, ref, **extra)
    except ConveyorError as exc:  # no model yet, no profile: report it, still run triggers
        result.check_error = str(exc)
    data = project.config.data
    watch_data = mon.retrain.on_new_data and data is not None  # hashing the source costs I/O
    checksum = file_checksum(data.source, project.root) if watch_data and data else None
    result.triggers = triggers.decide(
        metadata,
        name,
        schedule=mon.schedule,
        on_drift=mon.retrain.on_drift,
        on_new_data=mon.retrain.on_new_data,
        persist=mon.retrain.persist,
        source_checksum=checksum,
    )
    if result.triggers:
        result.cooldown_left = triggers.cooling_down(
            metadata, name, minutes=mon.retrain.cooldown_minutes
        )
        if result.cooldown_left is None:
            _retrain(project, result, on_retrain)
        else:
            metadata.append_event(
                "retrain.skipped",
                name,
                reason=f"cooling down: {result.cause}",
                details={"seconds_left": round(result.cooldown_left)},
            )
    new_data = any(t.kind == "new_data" for t in result.triggers)
    if new_data and not result.retrained:  # not trained on yet: keep it new for the next cycle
        checksum = triggers.seen_checksum(metadata, name)
    metadata.append_event(
        triggers.CYCLE,
        name,
        reason=result.cause or None,
        details={"source_checksum": checksum, "retrained": result.retrained},
    )
    return result


def _retrain(
    project: Project, result: CycleResult, on_retrain: Callable[[str], None] | None
) -> None:
    metadata, name = project.metadata, result.model
    metadata.append_event(
        triggers.RETRAIN,
        name,
        reason=f"retrained because {result.cause}",
        details={"triggers": [t.kind for t in result.triggers]},
    )
    if on_retrain is not None:
        on_retrain(result.cause)
    run = project.run("train")
    result.retrained, result.run_id, result.run_status = True, run.run_id, str(run.status)
    registration = run.outputs.get("registration")
    rejection = run.outputs.get("rejection")
    chosen = registration or rejection
    if chosen is not None:
        result.decision = Registration.of(project.load_artifact(chosen.digest))
    done = result.decision
    outcome = (
        f"{name}:{done.version} {done.status} ({done.reason})"
        if done is not None
        else f"{name}:? {run.status} ({run.status})"
    )
    metadata.append_event(
        triggers.RETRAIN_DONE,
        name,
        reason=f"retrained because {result.cause}: {outcome}",
        details={
            "run_id": run.run_id,
            "status": str(run.status),
            "version": None if done is None else done.version,
            "promoted": done is not None and done.promoted,
        },
    )


def watch(
    project: Project,
    *,
    model: str | None = None,
    interval: float | None = None,
    stop: threading.Event,
    on_cycle: Callable[[CycleResult], None] | None = None,
) -> int:
    """Run cycles every ``interval`` seconds until ``stop`` is set; returns the cycles run.

    A cycle in progress always finishes (a retrain included) before the loop exits.
    """
    wait = interval or project.config.monitoring.interval_seconds
    done = 0
    while not stop.is_set():
        started = time.monotonic()
        result = cycle(project, model=model)
        done += 1
        if on_cycle is not None:
            on_cycle(result)
        stop.wait(max(0.0, wait - (time.monotonic() - started)))
    return done
