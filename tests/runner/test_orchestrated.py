"""One step at a time (what a cloud pipeline step or any orchestrator executes): runs named by
an external key, inputs read from the same run, retries, failures resumed, the run's status."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conveyor.errors import GateFailedError, OrchestrationError
from conveyor.pipeline import Pipeline, pipeline, step
from conveyor.runner import LocalExecutor, Runner
from conveyor.runner.orchestrated import Stamp, StepRun, plan, run_id_for, run_step
from conveyor.store.artifacts import open_artifact_store
from conveyor.store.metadata import ORCHESTRATED, RunStatus, StepStatus, open_metadata_store

CALLS: list[str] = []
BREAK: set[str] = set()  # steps that raise while their name is in here
STAMP = Stamp({"seed": 1}, None, "a" * 64)


@step(outputs=("frame", "info"))
def make(n: int = 4) -> tuple[pd.DataFrame, dict[str, int]]:
    CALLS.append("make")
    return pd.DataFrame({"x": range(n)}), {"n": n}


@step
def total(frame: pd.DataFrame, info: dict[str, int], ctx: Any) -> int:
    CALLS.append("total")
    ctx.log_metrics({"sum": float(frame.x.sum())})
    if "total" in BREAK:
        raise RuntimeError("disk full")
    return int(frame.x.sum()) + info["n"]


@step
def side(info: dict[str, int]) -> int:
    CALLS.append("side")
    return info["n"] * 2


@step
def verdict(total: int, side: int) -> str:
    CALLS.append("verdict")
    if "verdict" in BREAK:
        raise GateFailedError("total below the gate")
    return f"{total}/{side}"


LINE = pipeline(make, total, side, verdict, name="toy")


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    BREAK.clear()


def _step(runner: Runner, name: str, key: str = "exec-1", stamp: Stamp = STAMP) -> StepRun:
    return run_step(runner, LINE, key, name, stamp)


def _all(runner: Runner, key: str = "exec-1") -> dict[str, StepRun]:
    return {s.name: _step(runner, s.name, key) for s in LINE.steps}


def test_a_key_names_one_run_and_plan_makes_every_step_pending(runner: Runner) -> None:
    first = plan(runner, LINE, "pipeline-job-20261130", STAMP)
    again = plan(runner, LINE, "pipeline-job-20261130", STAMP)
    other = plan(runner, LINE, "pipeline-job-20261201", STAMP)
    assert first.id == again.id == run_id_for("pipeline-job-20261130") != other.id
    assert first.executor == ORCHESTRATED and first.status is RunStatus.RUNNING
    assert [s.status for s in first.steps] == [StepStatus.PENDING] * 4
    assert run_id_for("0123456789abcdef0123456789abcdef") == "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("key", ["", "with space", "semi;colon", "x" * 129, "-leading"])
def test_a_key_a_platform_never_makes_is_refused(key: str) -> None:
    with pytest.raises(OrchestrationError, match="--run-id"):
        run_id_for(key)


def test_steps_run_in_order_give_what_a_whole_run_gives(runner: Runner) -> None:
    results = _all(runner)
    assert [r.status for r in results.values()] == [StepStatus.SUCCEEDED] * 4
    assert [r.run_status for r in results.values()][-1] is RunStatus.SUCCEEDED
    assert {r.run_status for r in list(results.values())[:-1]} == {RunStatus.RUNNING}
    record = runner.metadata.get_run(results["make"].run_id)
    assert record.status is RunStatus.SUCCEEDED and record.ended_at is not None
    assert record.metrics == {"sum": 6.0}
    whole = runner.run(LINE, use_cache=False)
    stepwise = {o.name: o.digest for r in results.values() for o in r.outputs}
    assert {n: ref.digest for n, ref in whole.outputs.items()} == stepwise


def test_a_step_whose_inputs_are_not_produced_yet_says_which_and_runs_nothing(
    runner: Runner,
) -> None:
    with pytest.raises(OrchestrationError) as caught:
        _step(runner, "total")
    message = str(caught.value)
    assert "'frame' from step 'make' (pending)" in message
    assert "'info' from step 'make' (pending)" in message
    assert CALLS == []
    record = runner.metadata.get_run(run_id_for("exec-1"))
    assert {s.name: s.status for s in record.steps}["total"] is StepStatus.PENDING


def test_a_step_already_done_is_not_run_again(runner: Runner) -> None:
    _step(runner, "make")
    again = _step(runner, "make")
    assert again.already_done and again.status is StepStatus.SUCCEEDED
    assert CALLS == ["make"]
    assert {o.name for o in again.outputs} == {"frame", "info"}


def test_a_crashed_step_run_again_resumes_the_run_with_a_clean_record(runner: Runner) -> None:
    _step(runner, "make")
    BREAK.add("total")
    crashed = _step(runner, "total")
    assert crashed.status is StepStatus.FAILED and crashed.run_status is RunStatus.FAILED
    assert "RuntimeError: disk full" in (crashed.error or "")
    record = runner.metadata.get_run(crashed.run_id)
    assert record.status is RunStatus.FAILED and "total: RuntimeError" in (record.error or "")
    with pytest.raises(OrchestrationError, match="'total' from step 'total' \\(failed\\)"):
        _step(runner, "verdict")
    BREAK.clear()
    resumed = _step(runner, "total")
    assert resumed.status is StepStatus.SUCCEEDED and resumed.run_status is RunStatus.RUNNING
    _step(runner, "side")
    assert _step(runner, "verdict").run_status is RunStatus.SUCCEEDED
    record = runner.metadata.get_run(crashed.run_id)
    retried = {s.name: s for s in record.steps}["total"]
    assert retried.error is None and retried.traceback is None
    assert [o.name for o in retried.outputs] == ["total"]
    assert record.metrics == {"sum": 6.0}
    assert record.error is None and record.status is RunStatus.SUCCEEDED


def test_another_execution_reuses_steps_from_the_cache(runner: Runner) -> None:
    _all(runner, "exec-1")
    CALLS.clear()
    second = _all(runner, "exec-2")
    assert {r.status for r in second.values()} == {StepStatus.CACHED}
    assert CALLS == []
    assert second["verdict"].run_status is RunStatus.SUCCEEDED


def test_a_step_with_another_config_cannot_join_the_run(runner: Runner) -> None:
    _step(runner, "make")
    other = Stamp({"seed": 2}, None, "b" * 64)
    with pytest.raises(OrchestrationError, match="same conveyor.yaml and --set overrides"):
        _step(runner, "total", stamp=other)


def test_a_changed_line_cannot_join_a_run_planned_before(runner: Runner) -> None:
    _step(runner, "make")
    shorter = pipeline(make, side, name="toy")
    with pytest.raises(OrchestrationError, match="start a new run for the changed line"):
        run_step(runner, shorter, "exec-1", "side", STAMP)


def test_an_unknown_step_lists_the_steps(runner: Runner) -> None:
    with pytest.raises(OrchestrationError, match="no step 'trian'; its steps: make, total"):
        _step(runner, "trian")


def test_a_line_with_supplied_inputs_cannot_be_orchestrated(runner: Runner) -> None:
    fed = pipeline(total, name="fed", inputs=["frame", "info"])
    with pytest.raises(OrchestrationError, match="takes inputs"):
        plan(runner, fed, "exec-1", STAMP)


def test_a_failed_gate_makes_the_run_gated_and_it_stays_gated(runner: Runner) -> None:
    BREAK.add("verdict")
    for name in ("make", "side", "total"):
        _step(runner, name)
    gated = _step(runner, "verdict")
    assert gated.gated and gated.run_status is RunStatus.GATED


def test_a_run_held_by_a_live_whole_run_is_refused(runner: Runner) -> None:
    run_id, _ = runner.metadata.create_run("toy", [s.name for s in LINE.steps], executor="local")
    with pytest.raises(OrchestrationError, match="being run whole by process"):
        run_step(runner, LINE, run_id, "make", Stamp({}, None, None))


def test_recovery_of_dead_processes_leaves_orchestrated_runs_alone(runner: Runner) -> None:
    run_id = _step(runner, "make").run_id
    assert runner.metadata.recover_interrupted() == []
    assert runner.metadata.get_run(run_id).status is RunStatus.RUNNING


def _runner_on(url: str, tmp_path: Path) -> tuple[Runner, LocalExecutor]:
    metadata = open_metadata_store(url)
    artifacts = open_artifact_store(str(tmp_path / "artifacts"))
    executor = LocalExecutor(artifacts, lambda: metadata)
    return Runner(metadata, artifacts, executor), executor


def _race(
    url: str, tmp_path: Path, line: Pipeline, steps: list[str]
) -> list[StepRun | BaseException]:
    """Start ``steps`` at the same moment, each in its own thread with its own connections
    (the store is created and migrated first, as a deployment's is)."""
    open_metadata_store(url).close()
    results: list[StepRun | BaseException] = []
    barrier = threading.Barrier(len(steps))

    def one(name: str) -> None:
        runner, executor = _runner_on(url, tmp_path)
        try:
            barrier.wait()
            results.append(run_step(runner, line, "race-1", name, STAMP))
        except BaseException as exc:  # reported by the test
            results.append(exc)
        finally:
            executor.close()
            runner.metadata.close()  # type: ignore[attr-defined]

    threads = [threading.Thread(target=one, args=(name,)) for name in steps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@step
def other_root(n: int = 3) -> int:
    CALLS.append("other_root")
    return n


@pytest.mark.service
def test_first_steps_started_at_once_on_a_new_key_join_one_run(
    postgres_url: str, tmp_path: Path
) -> None:
    """Two root steps of one execution race to create the run (on PostgreSQL, where
    orchestrated runs live): both end in the same one."""
    line = pipeline(make, other_root, name="toy")
    results = _race(postgres_url, tmp_path, line, ["make", "other_root"])
    assert all(isinstance(r, StepRun) for r in results), results
    assert {r.run_id for r in results if isinstance(r, StepRun)} == {run_id_for("race-1")}
    assert sorted(CALLS) == ["make", "other_root"]


def test_of_two_processes_that_saw_a_step_pending_one_gets_it(runner: Runner) -> None:
    """The claim is conditional on what each saw: the loser is told, nothing runs twice."""
    record = plan(runner, LINE, "exec-1", STAMP)
    make_id = record.steps[0].id
    metadata = runner.metadata
    assert metadata.claim_step(make_id, seen=StepStatus.PENDING)
    assert not metadata.claim_step(make_id, seen=StepStatus.PENDING)
    started = metadata.get_run(record.id).steps[0].started_at
    assert not metadata.claim_step(make_id, seen=StepStatus.RUNNING, seen_started_at=0.0)
    # an attempt that died while running is taken over by whoever saw that very attempt
    assert metadata.claim_step(make_id, seen=StepStatus.RUNNING, seen_started_at=started)


def test_a_step_claimed_by_another_process_is_not_run_here(runner: Runner) -> None:
    record = plan(runner, LINE, "exec-1", STAMP)
    seen = record.steps[0]
    assert runner.metadata.claim_step(seen.id, seen=StepStatus.PENDING)
    original = runner.metadata.get_run

    def stale(run_id: str) -> Any:  # this process read the run before the other one claimed
        runner.metadata.get_run = original  # type: ignore[method-assign]
        return record

    runner.metadata.get_run = stale  # type: ignore[method-assign]
    with pytest.raises(OrchestrationError, match="started by another process at the same moment"):
        _step(runner, "make")
    assert CALLS == []
