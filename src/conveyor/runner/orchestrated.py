"""One step of a run at a time, driven from outside: a cloud pipeline, Airflow, a shell loop.

Every step of the run reads its inputs by digest from the steps before it in the shared stores
and records its outputs there, so an orchestrator only has to start the steps in DAG order, each
as ``conveyor run PIPELINE --run-id KEY --step NAME``, on any machine that reaches the stores.

The run is named by the orchestrator's key (its execution id): the first step to use a key
creates the run, every other step of the same execution joins it. A step that is already done is
not run again (orchestrators retry), a failed or interrupted one is run afresh, and the run's
status follows its steps: running until every step succeeded or came from the cache, failed or
gated as soon as one step failed.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import MetadataStorageError, NotFoundError, OrchestrationError
from conveyor.runner._book import StepBook
from conveyor.store.metadata import ORCHESTRATED, RunStatus, StepStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from conveyor.pipeline import Pipeline, Step
    from conveyor.runner.engine import Runner
    from conveyor.store.metadata import ArtifactRef, RunRecord, StepRecord

RUN_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_DONE = (StepStatus.SUCCEEDED, StepStatus.CACHED)
# Any fixed UUID: it only has to stay the same so that a key always names the same run.
_KEYS = uuid.UUID("8f0d6c52-5a3e-4c41-9b7e-2f8e1c0a7d13")


def run_id_for(key: str) -> str:
    """The run id a key names: 32 hex digits are a conveyor run id, any other key (a platform's
    execution id, e.g. ``pipeline-job-20261130``) maps to one through UUID5.

    Raises:
        OrchestrationError: the key has characters a platform's id never has.
    """
    if not RUN_KEY.fullmatch(key):
        raise OrchestrationError(
            f"--run-id {key!r}: expected 1-128 characters of letters, digits and . _ : - "
            "(the orchestrator's execution id, or a conveyor run id)"
        )
    return key if _RUN_ID.fullmatch(key) else uuid.uuid5(_KEYS, key).hex


@dataclass(frozen=True)
class Stamp:
    """What makes two invocations parts of the same run: the config and the code commit."""

    params: Mapping[str, Any]
    git_commit: str | None
    config_hash: str | None


@dataclass(frozen=True)
class StepRun:
    """How one step of an orchestrated run went."""

    run_id: str
    step: str
    status: StepStatus  # SUCCEEDED, CACHED or FAILED; the recorded status when already done
    run_status: RunStatus
    outputs: tuple[ArtifactRef, ...] = ()
    already_done: bool = False
    error: str | None = None
    gated: bool = False
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the step's outputs are there for the steps after it."""
        return self.status in _DONE


def plan(runner: Runner, pipeline: Pipeline, key: str | None, stamp: Stamp) -> RunRecord:
    """The run ``key`` names, created with every step pending if it does not exist yet.

    Two steps of one execution may start at once: whichever creates the run first wins, the
    other reads it.

    Raises:
        OrchestrationError: the pipeline needs supplied inputs, or the run exists but was
            planned from another pipeline or another config.
    """
    if pipeline.inputs:
        raise OrchestrationError(
            f"pipeline {pipeline.name!r} takes inputs {sorted(pipeline.inputs)} from its caller: "
            "it cannot be run step by step"
        )
    run_id = run_id_for(key) if key else uuid.uuid4().hex
    record = _find(runner, run_id)
    if record is None:
        try:
            runner.metadata.create_run(
                pipeline.name,
                [s.name for s in pipeline.steps],
                executor=ORCHESTRATED,
                params=stamp.params,
                git_commit=stamp.git_commit,
                config_hash=stamp.config_hash,
                run_id=run_id,
            )
        except MetadataStorageError:
            if _find(runner, run_id) is None:  # not a lost race: a real failure
                raise
        record = runner.metadata.get_run(run_id)
    _check_same(record, pipeline, stamp, key or run_id)
    return record


def run_step(
    runner: Runner,
    pipeline: Pipeline,
    key: str,
    name: str,
    stamp: Stamp,
    *,
    use_cache: bool = True,
) -> StepRun:
    """Run step ``name`` of the run ``key`` names (created if needed) and record it.

    Raises:
        OrchestrationError: no such step, a step it needs has not produced its outputs in this
            run, the run is held by a live ``conveyor run`` process, or it was planned
            differently (see :func:`plan`).
    """
    if name not in {s.name for s in pipeline.steps}:
        raise OrchestrationError(
            f"pipeline {pipeline.name!r} has no step {name!r}; its steps: "
            f"{', '.join(s.name for s in pipeline.steps)}"
        )
    record = plan(runner, pipeline, key, stamp)
    steps = {s.name: s for s in record.steps}
    current = steps[name]
    if current.status in _DONE:
        return StepRun(
            record.id, name, current.status, record.status, current.outputs, already_done=True
        )
    if record.status is RunStatus.RUNNING and record.executor != ORCHESTRATED:
        raise OrchestrationError(
            f"run {record.id[:8]} is being run whole by process {record.pid} on {record.host}; "
            "run one step at a time only in a run that process does not hold"
        )
    s = pipeline[name]
    arguments = _inputs(pipeline, s, steps, record.id)
    # pending, or an attempt that failed, was interrupted, skipped, or died while running
    if not runner.metadata.claim_step(
        current.id, seen=current.status, seen_started_at=current.started_at
    ):
        now = {st.name: st for st in runner.metadata.get_run(record.id).steps}[name]
        raise OrchestrationError(
            f"step {name!r} of run {record.id[:8]} was started by another process at the same "
            f"moment (it is now {now.status}); let that one finish"
        )
    if record.status is not RunStatus.RUNNING:
        runner.metadata.set_run_status(record.id, RunStatus.RUNNING)
    return _execute(runner, record, s, arguments, use_cache=use_cache)


def _execute(
    runner: Runner,
    record: RunRecord,
    s: Step,
    arguments: dict[str, ArtifactRef],
    *,
    use_cache: bool,
) -> StepRun:
    book = StepBook(
        runner.metadata,
        runner.artifacts,
        runner.executor,
        runner.hooks,
        record.id,
        {step.name: step.id for step in record.steps},
        use_cache,
    )
    started = time.time()
    begun = book.start(s, arguments)
    if isinstance(begun, tuple):  # served from the cache
        status, outputs, error, gated = StepStatus.CACHED, begun, None, False
        runner.hooks.after_step_run(s.name, status, 0.0)
    else:
        outcome = begun.result()
        book.finish(s, arguments, outcome)
        status = StepStatus.SUCCEEDED if outcome.ok else StepStatus.FAILED
        outputs, error, gated = outcome.outputs, outcome.error, outcome.gated
        if error is not None:
            runner.hooks.on_step_error(s.name, error)
        runner.hooks.after_step_run(s.name, status, outcome.ended_at - outcome.started_at)
    run_status = _settle(runner, record, s.name, gated=gated)
    return StepRun(
        record.id,
        s.name,
        status,
        run_status,
        tuple(outputs),
        error=error,
        gated=gated,
        duration=time.time() - started,
    )


def _settle(runner: Runner, before: RunRecord, name: str, *, gated: bool) -> RunStatus:
    """Set the run's status from its steps' after step ``name`` ended; returns it."""
    steps = runner.metadata.get_run(before.id).steps
    failed = [s for s in steps if s.status is StepStatus.FAILED]
    if not failed:
        done = all(s.status in _DONE for s in steps)
        status = RunStatus.SUCCEEDED if done else RunStatus.RUNNING
        runner.metadata.set_run_status(before.id, status)
        return status
    names = {s.name for s in failed}
    still_gated = before.status is RunStatus.GATED and name not in names
    status = RunStatus.GATED if (names == {name} and gated) or still_gated else RunStatus.FAILED
    error = "; ".join(f"{s.name}: {s.error}" for s in failed)
    runner.metadata.set_run_status(before.id, status, error=error)
    return status


def _inputs(
    pipeline: Pipeline, s: Step, steps: dict[str, StepRecord], run_id: str
) -> dict[str, ArtifactRef]:
    """Step ``s``'s arguments from the outputs its upstream steps recorded in this run."""
    producers = {out: p.name for p in pipeline.steps for out in p.outputs}
    arguments: dict[str, ArtifactRef] = {}
    missing: list[str] = []
    for arg, dataset in s.inputs.items():
        producer = steps[producers[dataset]]
        ref = next((o for o in producer.outputs if o.name == dataset), None)
        if producer.status in _DONE and ref is not None:
            arguments[arg] = ref
        else:
            missing.append(f"{dataset!r} from step {producer.name!r} ({producer.status})")
    if missing:
        raise OrchestrationError(
            f"step {s.name!r} of run {run_id[:8]} cannot run yet: it needs "
            f"{', '.join(missing)}; run those steps first (`conveyor runs show {run_id[:8]}`)"
        )
    return arguments


def _find(runner: Runner, run_id: str) -> RunRecord | None:
    try:
        record = runner.metadata.get_run(run_id)
    except NotFoundError:
        return None
    return record if record.id == run_id else None  # get_run also matches prefixes


def _check_same(record: RunRecord, pipeline: Pipeline, stamp: Stamp, key: str) -> None:
    where = f"run {record.id[:8]} (--run-id {key})"
    if record.pipeline != pipeline.name:
        raise OrchestrationError(
            f"{where} is a run of pipeline {record.pipeline!r}, not {pipeline.name!r}"
        )
    planned = [s.name for s in record.steps]
    if planned != [s.name for s in pipeline.steps]:
        raise OrchestrationError(
            f"{where} was planned with steps {planned}; the pipeline now has "
            f"{[s.name for s in pipeline.steps]}: start a new run for the changed line"
        )
    if record.config_hash != stamp.config_hash:
        raise OrchestrationError(
            f"{where} was planned from a config hashing to {str(record.config_hash)[:12]}, this "
            f"step's config hashes to {str(stamp.config_hash)[:12]}: every step of a run must use "
            "the same conveyor.yaml and --set overrides"
        )
