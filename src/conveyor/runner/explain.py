"""Why each step of a run was a cache hit or a miss, from the key parts the runner recorded.

A miss is compared with the latest earlier execution of the same step in the same pipeline:
the explanation names the code (module, file, function), declared version, parameters, inputs
or conveyor version that changed, or says the cache was off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.runner.cache import CacheMode
from conveyor.store.metadata import StepStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from conveyor.store.metadata import RunStore, StepKeyParts


@dataclass(frozen=True, slots=True)
class StepExplanation:
    """One step's cache verdict: ``hit`` and the sentence that says why."""

    step: str
    hit: bool
    reason: str


def explain_run(metadata: RunStore, run_id: str) -> list[StepExplanation]:
    """A verdict for every step of a run, in pipeline order.

    Raises:
        NotFoundError: no such run (``run_id`` may be a unique prefix).
    """
    record = metadata.get_run(run_id)
    parts = {p.name: p for p in metadata.step_key_parts(record.id)}
    out = []
    for s in record.steps:
        found = parts.get(s.name)
        if found is None:
            out.append(StepExplanation(s.name, False, _unkeyed(s.status)))
            continue
        previous = metadata.previous_key_parts(
            record.pipeline, s.name, before_step_id=found.step_id
        )
        out.append(explain_step(found, previous))
    return out


def explain_step(current: StepKeyParts, previous: StepKeyParts | None) -> StepExplanation:
    """Why ``current`` was a hit or a miss, given the step's previous execution (or None)."""
    if current.status is StepStatus.CACHED:
        source = (current.cached_from_run or "?")[:8]
        return StepExplanation(
            current.name, True, f"hit (same code, params and inputs as run {source})"
        )
    return StepExplanation(current.name, False, "miss: " + _miss_reason(current, previous))


def _unkeyed(status: StepStatus) -> str:
    if status is StepStatus.SKIPPED:
        return "not run (an upstream step failed)"
    return f"{status}: no cache key recorded"


def _miss_reason(current: StepKeyParts, previous: StepKeyParts | None) -> str:
    mode = current.parts.get("cache", CacheMode.ON)
    if mode == CacheMode.NO_CACHE:
        return "--no-cache"
    if mode == CacheMode.STEP_OFF:
        return "cache disabled for this step"
    if previous is None:
        return "no earlier run of this step"
    changes = differences(previous.parts, current.parts)
    if changes:
        return ", ".join(changes)
    run = previous.run_id[:8]
    if previous.status.done_ok:
        return f"same key as run {run}, but its outputs are gone from the artifact store"
    return f"same key as run {run}, which ended {previous.status}"


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What changed between two recorded key parts, one phrase per ingredient."""
    found = _code_changes(old.get("code", {}), new.get("code", {}))
    if old.get("version") != new.get("version"):
        found.append(f"version changed ({old.get('version')!r} -> {new.get('version')!r})")
    found += _keyed_changes("param", old.get("params", {}), new.get("params", {}))
    found += _input_changes(old, new)
    if old.get("outputs") != new.get("outputs"):
        found.append(f"outputs changed ({old.get('outputs')} -> {new.get('outputs')})")
    if old.get("conveyor") != new.get("conveyor"):
        found.append(f"conveyor version changed ({old.get('conveyor')} -> {new.get('conveyor')})")
    return found


def _code_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    return _changes(
        old,
        new,
        lambda label: "conveyor code" if label == "conveyor" else label,
        removed="no longer used",
    )


def _keyed_changes(kind: str, old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    return _changes(old, new, lambda name: f"{kind} {name!r}", removed="removed")


def _changes(
    old: Mapping[str, str],
    new: Mapping[str, str],
    named: Callable[[str], str],
    *,
    removed: str,
) -> list[str]:
    """``NAME added``, ``NAME <removed>`` or ``NAME changed`` per differing entry, sorted."""
    found = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            found.append(f"{named(key)} added")
        elif key not in new:
            found.append(f"{named(key)} {removed}")
        elif old[key] != new[key]:
            found.append(f"{named(key)} changed")
    return found


def _input_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    before: Mapping[str, str] = old.get("inputs", {})
    after: Mapping[str, str] = new.get("inputs", {})
    datasets: Mapping[str, str] = new.get("datasets", {})
    found = []
    for arg in sorted(set(before) | set(after)):
        if arg in before and arg in after and before[arg] != after[arg]:
            dataset = datasets.get(arg, arg)
            found.append(
                f"input {arg!r} changed (dataset {dataset!r}: "
                f"{before[arg][:10]} -> {after[arg][:10]})"
            )
    found += [f"input {a!r} added" for a in sorted(set(after) - set(before))]
    found += [f"input {a!r} removed" for a in sorted(set(before) - set(after))]
    return found
