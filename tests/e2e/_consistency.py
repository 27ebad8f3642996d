"""What must hold in a project's stores after any crash: a checker every kill test reuses.

:func:`inspect_stores` opens the project as any command does (``Project.load(dir)``, whose
metadata store marks runs of dead processes ``interrupted``) and reads everything back through
the store interfaces; :func:`assert_consistent` fails with every problem found. The invariants:

- no run is left ``running`` once its process is gone, and a run that ended has no step left
  ``running`` or ``pending``; a succeeded run has only succeeded or cached steps;
- every artifact row has its bytes, whole: they hash to the row's digest and have its size;
  every digest a run, model version, dataset, prediction-log partition or reference profile
  points at has a row;
- every alias points at a model version that exists, is neither rejected nor archived, and is
  the last one in that alias's history;
- an ``approved`` version either held an alias or was approved by hand (an ``approve`` event):
  the train line registers a winner as approved and moves the alias in the same step, so an
  approved version that never held one is a promotion cut in half;
- every prediction-log partition reads back with the rows it was indexed with;
- nothing under the artifact root's ``incoming/`` (temporary names) is an artifact, and every
  file under ``sha256/`` hashes to its name.

The metadata store has no public method listing artifact rows, so that one table is read with
the store's own schema (``conveyor.store.metadata.tables``), read-only.

:func:`run_monitor` runs ``conveyor monitor`` on the project: after a crash it must either
succeed or fail with one readable line, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.project import Project

INCOMING = "incoming"
"""Where ``FsspecArtifactStore`` writes bytes under a temporary ``*.part`` name first."""
CONTENT = "sha256"
"""Where it moves them, as ``sha256/<digest[:2]>/<digest>``."""


@dataclass
class StoreState:
    """What :func:`inspect_stores` saw, and every problem with it."""

    runs: dict[str, str] = field(default_factory=dict)  # run id -> status
    steps: dict[str, dict[str, str]] = field(default_factory=dict)  # run id -> step -> status
    versions: dict[str, str] = field(default_factory=dict)  # "name:version" -> status
    aliases: dict[str, int] = field(default_factory=dict)  # "name@alias" -> version
    artifact_rows: int = 0
    artifact_bytes: int = 0
    stray: list[str] = field(default_factory=list)  # files under incoming/
    incoming_seen: bool = False  # whether incoming/ existed (local stores)
    log_partitions: int = 0
    log_rows: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people: runs by status, versions, aliases, log, stray files."""
        by_status: dict[str, int] = {}
        for status in self.runs.values():
            by_status[status] = by_status.get(status, 0) + 1
        runs = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) or "none"
        aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(self.aliases.items())) or "none"
        return (
            f"runs: {runs}; versions: {len(self.versions)}; aliases: {aliases}; "
            f"artifacts: {self.artifact_rows} rows verified; log: {self.log_partitions} "
            f"partitions/{self.log_rows} rows; stray incoming files: {len(self.stray)}"
        )


def inspect_stores(root: Path) -> StoreState:
    """Open the project at ``root`` as a command would and check every invariant above."""
    from conveyor.project import Project

    state = StoreState()
    try:
        proj = Project.load(root)
    except Exception as exc:  # a config that no longer loads is itself a finding
        state.problems.append(f"the project does not load: {type(exc).__name__}: {exc}")
        return state
    with proj:
        try:
            _check(proj, state)
        except Exception as exc:  # a store that cannot be read back is a finding, not a crash
            state.problems.append(f"reading the stores failed: {type(exc).__name__}: {exc}")
    return state


def assert_consistent(root: Path) -> StoreState:
    """:func:`inspect_stores`, failing with every problem found."""
    state = inspect_stores(root)
    assert not state.problems, "inconsistent stores after a crash:\n- " + "\n- ".join(
        state.problems
    )
    return state


def _check(proj: Project, state: StoreState) -> None:
    metadata, artifacts = proj.metadata, proj.artifacts  # opening marks dead runs interrupted
    rows = _artifact_rows(proj.metadata_url)
    state.artifact_rows = len(rows)
    referenced: dict[str, str] = {}  # digest -> who points at it
    _check_runs(proj, state, referenced)
    _check_registry(proj, state, referenced)
    for dataset in metadata.list_datasets():
        if dataset.digest:
            referenced.setdefault(dataset.digest, f"dataset {dataset.fingerprint[:12]}")
    _check_prediction_log(proj, state, rows, referenced)
    for digest, who in sorted(referenced.items()):
        if digest not in rows:
            state.problems.append(f"{who} points at artifact {digest} which has no row")
    from conveyor.errors import ArtifactError

    for digest, (size, _kind) in sorted(rows.items()):
        try:
            data = artifacts.get_bytes(digest)  # checks the bytes still hash to the digest
        except ArtifactError as exc:
            state.problems.append(f"artifact row {digest} has no whole bytes: {exc}")
            continue
        state.artifact_bytes += len(data)
        if len(data) != size:
            state.problems.append(f"artifact {digest}: row says {size} bytes, stored {len(data)}")
    _check_files(proj, state, rows)


def _artifact_rows(url: str) -> dict[str, tuple[int, str]]:
    """Every row of the artifacts table: digest -> (size, kind)."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.pool import NullPool

    from conveyor.store.metadata import tables

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                select(tables.artifacts.c.digest, tables.artifacts.c.size, tables.artifacts.c.kind)
            ).all()
    finally:
        engine.dispose()
    return {digest: (int(size), kind) for digest, size, kind in found}


def _check_runs(proj: Project, state: StoreState, referenced: dict[str, str]) -> None:
    from conveyor.store.metadata import RunStatus, StepStatus

    unfinished = (StepStatus.RUNNING, StepStatus.PENDING)
    for listed in proj.metadata.list_runs(limit=1_000_000):
        run = proj.metadata.get_run(listed.id)
        state.runs[run.id] = str(run.status)
        state.steps[run.id] = {s.name: str(s.status) for s in run.steps}
        if run.status == RunStatus.RUNNING:
            state.problems.append(
                f"run {run.id[:8]} is still 'running' (pid {run.pid}) after its process ended"
            )
            continue
        for step in run.steps:
            if step.status in unfinished:
                state.problems.append(
                    f"run {run.id[:8]} ended {run.status} with step {step.name} {step.status}"
                )
            if run.status == RunStatus.SUCCEEDED and not step.status.done_ok:
                state.problems.append(
                    f"run {run.id[:8]} succeeded with step {step.name} {step.status}"
                )
            for ref in (*step.inputs, *step.outputs):
                referenced.setdefault(ref.digest, f"run {run.id[:8]} step {step.name} ({ref.name})")


def _check_registry(proj: Project, state: StoreState, referenced: dict[str, str]) -> None:
    from conveyor.errors import ModelNotFoundError

    metadata = proj.metadata
    versions = metadata.list_model_versions()
    held: set[tuple[str, int]] = set()
    for name in {v.name for v in versions}:
        held |= {(name, h["version"]) for h in metadata.alias_history(name)}
    for v in versions:
        ref = f"{v.name}:{v.version}"
        state.versions[ref] = v.status
        referenced.setdefault(v.digest, f"model version {ref}")
        profile = v.tags.get("reference_profile")
        if profile:
            referenced.setdefault(profile, f"reference profile of {ref}")
        if v.status == "approved" and (v.name, v.version) not in held:
            by_hand = metadata.list_events(entity=ref, action="approve")
            if not by_hand:
                state.problems.append(
                    f"{ref} is approved ({v.reason}) but never held an alias and nobody "
                    f"approved it by hand: its promotion was cut in half (run {v.run_id})"
                )
    for (name, alias), version in sorted(metadata.aliases().items()):
        state.aliases[f"{name}@{alias}"] = version
        try:
            record = metadata.get_model_version(name, version)
        except ModelNotFoundError:
            state.problems.append(f"{name}@{alias} points at v{version}, which does not exist")
            continue
        if record.status in ("rejected", "archived"):
            state.problems.append(f"{name}@{alias} points at v{version}, which is {record.status}")
        history = metadata.alias_history(name, alias)
        if not history or history[-1]["version"] != version:
            last = history[-1]["version"] if history else None
            state.problems.append(
                f"{name}@{alias} points at v{version} but its history ends at v{last}"
            )


def _check_prediction_log(
    proj: Project,
    state: StoreState,
    rows: dict[str, tuple[int, str]],
    referenced: dict[str, str],
) -> None:
    from conveyor.monitoring.current import PREDICTED_AT, read_log

    metadata, artifacts = proj.metadata, proj.artifacts
    for name in sorted({v.name for v in metadata.list_model_versions()}):
        for part in metadata.list_prediction_logs(name):
            state.log_partitions += 1
            referenced.setdefault(part.digest, f"prediction-log partition {part.id} of {name}")
            if part.digest not in rows:
                continue  # reported with the other dangling references
            try:
                frame = artifacts.get(part.digest, rows[part.digest][1])
            except Exception as exc:
                state.problems.append(
                    f"prediction-log partition {part.id} of {name} does not read back: "
                    f"{type(exc).__name__}: {exc}"
                )
                continue
            state.log_rows += len(frame)
            if len(frame) != part.n_rows:
                state.problems.append(
                    f"prediction-log partition {part.id} of {name}: indexed with "
                    f"{part.n_rows} rows, holds {len(frame)}"
                )
            if PREDICTED_AT not in frame.columns:
                state.problems.append(f"prediction-log partition {part.id} has no {PREDICTED_AT}")
        try:
            read_log(metadata, artifacts, name)  # what monitoring reads: every partition at once
        except Exception as exc:
            state.problems.append(
                f"the prediction log of {name} does not read: {type(exc).__name__}: {exc}"
            )


def _check_files(proj: Project, state: StoreState, rows: dict[str, tuple[int, str]]) -> None:
    """Local stores only: temporary names are never artifacts; final names are whole."""
    if "://" in proj.artifacts_uri:
        return
    root = Path(proj.artifacts_uri)
    incoming = root / INCOMING
    state.incoming_seen = incoming.is_dir()
    if state.incoming_seen:
        for path in sorted(incoming.iterdir()):
            state.stray.append(path.name)
            if not path.name.endswith(".part"):
                state.problems.append(f"unexpected file in {incoming}: {path.name}")
    for digest in rows:
        where = Path(proj.artifacts.location(digest))
        if INCOMING in where.relative_to(root).parts:
            state.problems.append(f"artifact {digest} resolves to a temporary name: {where}")
    content = root / CONTENT
    for path in content.rglob("*") if content.is_dir() else ():
        if path.is_dir():
            continue
        if path.parent.name != path.name[:2] or path.parent.parent != content:
            state.problems.append(f"a file under {CONTENT}/ is not at an artifact address: {path}")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != path.name:
            state.problems.append(f"torn artifact under its final name: {path}")
    for entry in root.iterdir() if root.is_dir() else ():
        if entry.name not in (INCOMING, CONTENT):
            state.problems.append(f"unexpected entry in the artifact root: {entry}")


@dataclass(frozen=True)
class MonitorOutcome:
    """How ``conveyor monitor`` ended: a report, or one readable error line."""

    returncode: int
    report: dict[str, Any] | None
    error: str | None
    stderr: str

    @property
    def clean(self) -> bool:
        """Succeeded with a JSON report, or failed with ``error: ...`` and no traceback."""
        if "Traceback" in self.stderr:
            return False
        if self.returncode == 0:
            return self.report is not None
        return self.returncode == 1 and self.error is not None

    def describe(self) -> str:
        """``report: 6150 rows, no drift`` or ``error: ...`` for people."""
        if self.report is not None:
            drift = self.report.get("drift", {})
            verdict = {True: "drift", False: "no drift", None: "not enough data"}.get(
                drift.get("dataset_drift"), str(drift.get("dataset_drift"))
            )
            return f"monitor ok: {drift.get('n_current')} logged rows, {verdict}"
        if self.error is not None:
            return f"monitor: {self.error}"
        return f"monitor exited {self.returncode}: {self.stderr[-500:]}"


def run_monitor(
    conveyor_bin: Path, root: Path, env: dict[str, str], *, timeout: float = 120
) -> MonitorOutcome:
    """``conveyor monitor --json --no-alerts`` on the project at ``root``."""
    proc = subprocess.run(
        [str(conveyor_bin), "monitor", "-p", str(root), "--json", "--no-alerts"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    report = None
    if proc.returncode == 0:
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            report = None
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    return MonitorOutcome(proc.returncode, report, errors[0] if errors else None, proc.stderr)
