"""What a run records and reports, step by step: provenance, cache keys and hits, lineage by
dataset name, failures and gates, attachments and metrics, hooks, and where steps execute."""

from __future__ import annotations

import subprocess
import threading
import time
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from conveyor._version import __version__
from conveyor.errors import ConveyorError, GateFailedError, MissingInputError
from conveyor.pipeline import Pipeline, cache_key, pipeline, step
from conveyor.pipeline.context import StepContext
from conveyor.runner import LocalExecutor, RunHooks, Runner
from conveyor.runner import cache as step_cache
from conveyor.runner._execute import execute
from conveyor.runner.base import AbstractExecutor, StepOutcome, StepTask
from conveyor.runner.engine import RunResult
from conveyor.store.artifacts import open_artifact_store
from conveyor.store.metadata import ArtifactRef, RunStatus, StepStatus, open_metadata_store
from conveyor.store.metadata import tables as t

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import SqlMetadataStore


@pytest.fixture
def metadata() -> Iterator[SqlMetadataStore]:
    store = open_metadata_store("sqlite://")
    yield store
    store.close()


@pytest.fixture
def artifacts() -> AbstractArtifactStore:
    return open_artifact_store("memory://")


@pytest.fixture
def runner(metadata: SqlMetadataStore, artifacts: AbstractArtifactStore) -> Iterator[Runner]:
    with LocalExecutor(artifacts, lambda: metadata) as executor:
        yield Runner(metadata, artifacts, executor)


@step(outputs="numbers")
def numbers(n: int = 3) -> list[int]:
    return list(range(n))


@step(inputs={"values": "numbers"}, outputs="total")
def add(values: list[int]) -> int:
    return sum(values)


@step(inputs={"values": "numbers"}, outputs="gate")
def gate(values: list[int]) -> int:
    raise GateFailedError(f"f1 {len(values)} below 0.9")


@step(inputs={"values": "numbers"}, outputs="broken")
def broken(values: list[int]) -> int:
    raise ValueError(f"cannot use {len(values)} values")


@step(inputs={"value": "total"}, outputs="later")
def later(value: int) -> int:
    return value + 1


class Recorder(RunHooks):
    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def before_pipeline_run(self, run_id: str, pipeline: Pipeline) -> None:
        self.seen.append(("start", run_id, pipeline.name))

    def after_step_run(self, step_name: str, status: StepStatus, duration: float | None) -> None:
        self.seen.append((step_name, status, duration))

    def on_step_error(self, step_name: str, error: str) -> None:
        self.seen.append(("error", step_name, error))

    def after_pipeline_run(self, result: RunResult) -> None:
        self.seen.append(("end", result.run_id, result.status))


# --- the run record -----------------------------------------------------------------------------


def test_a_run_records_its_provenance_and_tells_the_hooks(
    metadata: SqlMetadataStore, artifacts: AbstractArtifactStore
) -> None:
    hooks = Recorder()
    with LocalExecutor(artifacts, lambda: metadata) as executor:
        result = Runner(metadata, artifacts, executor, hooks=hooks).run(
            pipeline(numbers, add, name="sums"),
            params={"n": 3},
            git_commit="abc123",
            config_hash="cfg9",
        )
    assert result.ok and result.status is RunStatus.SUCCEEDED
    assert result.recovered == [] and result.failures == {} and result.gated == set()
    record = metadata.get_run(result.run_id)
    assert (record.pipeline, record.executor, record.git_commit, record.config_hash) == (
        "sums",
        "local",
        "abc123",
        "cfg9",
    )
    assert (record.status, record.error, record.params) == (RunStatus.SUCCEEDED, None, {"n": 3})
    assert hooks.seen[0] == ("start", result.run_id, "sums")
    assert hooks.seen[-1] == ("end", result.run_id, RunStatus.SUCCEEDED)
    assert [s[:2] for s in hooks.seen[1:-1]] == [
        ("numbers", StepStatus.SUCCEEDED),
        ("add", StepStatus.SUCCEEDED),
    ]
    assert all(isinstance(s[2], float) and 0 <= s[2] < 60 for s in hooks.seen[1:-1])


def test_run_result_ok_only_when_the_run_succeeded() -> None:
    assert RunResult("r", RunStatus.SUCCEEDED).ok
    for status in (RunStatus.FAILED, RunStatus.GATED, RunStatus.INTERRUPTED, RunStatus.RUNNING):
        assert not RunResult("r", status).ok


def test_steps_record_cache_keys_and_lineage_by_dataset_name(
    runner: Runner, metadata: SqlMetadataStore
) -> None:
    result = runner.run(pipeline(numbers, add))
    steps = {s.name: s for s in metadata.get_run(result.run_id).steps}
    out = result.outputs["numbers"]
    assert [(r.name, r.digest) for r in steps["add"].inputs] == [("numbers", out.digest)]
    assert steps["add"].cache_key == step_cache.key_for(add, {"values": out})
    assert steps["numbers"].cache_key == step_cache.key_for(numbers, {})
    assert steps["add"].cache_key != steps["numbers"].cache_key
    assert [r.name for r in steps["add"].outputs] == ["total"]
    assert result.outputs["total"].kind == "json" and result.outputs["total"].size > 0


def test_a_cached_step_is_recorded_with_its_key_and_lineage(
    runner: Runner, metadata: SqlMetadataStore
) -> None:
    first = runner.run(pipeline(numbers, add))
    hooks = Recorder()
    runner.hooks = hooks
    second = runner.run(pipeline(numbers, add))
    assert second.steps == {"numbers": StepStatus.CACHED, "add": StepStatus.CACHED}
    assert second.outputs == first.outputs
    assert [s[:3] for s in hooks.seen[1:-1]] == [
        ("numbers", StepStatus.CACHED, 0.0),
        ("add", StepStatus.CACHED, 0.0),
    ]
    steps = {s.name: s for s in metadata.get_run(second.run_id).steps}
    firsts = {s.name: s for s in metadata.get_run(first.run_id).steps}
    assert steps["add"].cache_key == firsts["add"].cache_key
    assert steps["add"].cached_from == firsts["add"].id
    assert [r.name for r in steps["add"].inputs] == ["numbers"]


def test_an_uncacheable_step_runs_again_and_its_dependants_may_still_hit(
    runner: Runner,
) -> None:
    calls: list[str] = []

    @step(outputs="numbers", cache=False)
    def fresh() -> list[int]:
        calls.append("fresh")
        return [1, 2]

    runner.run(pipeline(fresh, add))
    result = runner.run(pipeline(fresh, add))
    assert calls == ["fresh", "fresh"]
    assert result.steps == {"fresh": StepStatus.SUCCEEDED, "add": StepStatus.CACHED}


def test_cache_lookup_misses_when_any_output_is_gone(
    runner: Runner, metadata: SqlMetadataStore, artifacts: AbstractArtifactStore
) -> None:
    first = runner.run(pipeline(numbers))
    key = step_cache.key_for(numbers, {})
    hit = step_cache.lookup(key, metadata, artifacts)
    assert hit is not None and [r.digest for r in hit.outputs] == [first.outputs["numbers"].digest]
    assert step_cache.lookup("0" * 64, metadata, artifacts) is None
    artifacts.delete(first.outputs["numbers"].digest)
    assert step_cache.lookup(key, metadata, artifacts) is None


def test_the_cache_key_depends_on_the_input_bytes_not_their_names() -> None:
    a = ArtifactRef("numbers", "a" * 64, "json", 1)
    same_bytes = ArtifactRef("renamed", "a" * 64, "pickle", 2)
    other = ArtifactRef("numbers", "b" * 64, "json", 1)
    assert step_cache.key_for(add, {"values": a}) == step_cache.key_for(add, {"values": same_bytes})
    assert step_cache.key_for(add, {"values": a}) != step_cache.key_for(add, {"values": other})


# --- failures -----------------------------------------------------------------------------------


def test_failures_are_joined_into_the_run_error_and_dependants_skipped(
    metadata: SqlMetadataStore, artifacts: AbstractArtifactStore
) -> None:
    @step(inputs={"value": "broken"}, outputs="after_broken")
    def after_broken(value: int) -> int:
        return value

    hooks = Recorder()
    with LocalExecutor(artifacts, lambda: metadata) as executor:
        result = Runner(metadata, artifacts, executor, hooks=hooks).run(
            pipeline(numbers, broken, after_broken, gate, add, later)
        )
    assert result.status is RunStatus.FAILED and not result.ok
    assert result.failures == {
        "broken": "ValueError: cannot use 3 values",
        "gate": "f1 3 below 0.9",  # conveyor's own errors are shown as written
    }
    assert result.gated == {"gate"}
    assert result.steps["after_broken"] is StepStatus.SKIPPED
    assert result.steps["later"] is StepStatus.SUCCEEDED
    record = metadata.get_run(result.run_id)
    assert record.status is RunStatus.FAILED
    # steps that end together are recorded in no fixed order
    assert sorted((record.error or "").split("; ")) == [
        "broken: ValueError: cannot use 3 values",
        "gate: f1 3 below 0.9",
    ]
    steps = {s.name: s for s in record.steps}
    assert steps["after_broken"].error == "upstream step 'broken' failed"
    assert steps["broken"].status is StepStatus.FAILED
    assert steps["broken"].error == "ValueError: cannot use 3 values"
    assert "ValueError: cannot use 3 values" in (steps["broken"].traceback or "")
    assert steps["broken"].started_at is not None and steps["broken"].ended_at is not None
    assert ("error", "broken", "ValueError: cannot use 3 values") in hooks.seen
    assert ("after_broken", StepStatus.SKIPPED, None) in hooks.seen
    assert hooks.seen[-1] == ("end", result.run_id, RunStatus.FAILED)


def test_a_run_whose_only_failures_are_gates_is_gated(runner: Runner) -> None:
    result = runner.run(pipeline(numbers, gate, add))
    assert result.status is RunStatus.GATED
    assert result.gated == {"gate"} and result.failures == {"gate": "f1 3 below 0.9"}
    assert runner.metadata.get_run(result.run_id).status is RunStatus.GATED


def test_a_failed_step_keeps_what_it_attached(runner: Runner) -> None:
    @step(inputs={"values": "numbers"}, outputs="model")
    def reject(values: list[int], ctx: StepContext) -> int:
        ctx.attach("rejection", {"why": "gates"})
        ctx.log_metric("f1", 0.5)
        raise GateFailedError("f1 0.5 below 0.9")

    result = runner.run(pipeline(numbers, reject))
    assert result.status is RunStatus.GATED
    attached = result.outputs["rejection"]
    assert runner.artifacts.get(attached.digest, attached.kind) == {"why": "gates"}
    record = runner.metadata.get_run(result.run_id)
    step_record = next(s for s in record.steps if s.name == "reject")
    assert [r.name for r in step_record.outputs] == ["rejection"]
    assert record.metrics == {"f1": 0.5}


def test_a_missing_input_names_every_one_and_records_nothing(runner: Runner) -> None:
    @step(inputs={"values": "numbers"}, outputs="count")
    def count(values: list[int]) -> int:
        return len(values)

    p = Pipeline([later, count], inputs=["total", "numbers"], name="needs")
    with pytest.raises(
        MissingInputError, match=r"pipeline 'needs' needs inputs \['numbers', 'total'\]"
    ):
        runner.run(p, inputs={"other": 1})
    assert runner.metadata.list_runs() == []
    result = runner.run(p, inputs={"total": 4, "numbers": [1]})
    assert result.ok and runner.artifacts.get(result.outputs["later"].digest, "json") == 5
    record = runner.metadata.get_run(result.run_id)
    inputs = {r.name: r for s in record.steps for r in s.inputs}
    assert set(inputs) == {"total", "numbers"}
    assert inputs["total"].kind == "json" and inputs["total"].size > 0


def test_an_interrupt_keeps_the_steps_that_finished(
    metadata: SqlMetadataStore, artifacts: AbstractArtifactStore
) -> None:
    @step(inputs={"values": "numbers"}, outputs="stop")
    def stop(values: list[int]) -> int:
        raise KeyboardInterrupt

    hooks = Recorder()
    with LocalExecutor(artifacts, lambda: metadata) as executor:
        with pytest.raises(KeyboardInterrupt):
            Runner(metadata, artifacts, executor, hooks=hooks).run(pipeline(numbers, stop))
    [record] = metadata.list_runs()
    assert (record.status, record.error) == (RunStatus.INTERRUPTED, "interrupted")
    assert {s.name: s.status for s in record.steps} == {
        "numbers": StepStatus.SUCCEEDED,
        "stop": StepStatus.INTERRUPTED,
    }
    assert hooks.seen[-1][0] != "end"


# --- executing one step -------------------------------------------------------------------------


def _task(s: Any, artifacts: AbstractArtifactStore, **inputs: Any) -> StepTask:
    arguments = {}
    for arg, value in inputs.items():
        stored = artifacts.put(value)
        arguments[arg] = ArtifactRef(s.inputs[arg], stored.digest, stored.kind, stored.size)
    return StepTask(s, "run-1", arguments)


def test_execute_gives_the_step_its_context(
    metadata: SqlMetadataStore, artifacts: AbstractArtifactStore
) -> None:
    seen: dict[str, Any] = {}

    @step(inputs={"values": "numbers"}, outputs="out", params={"scale": 2})
    def scaled(values: list[int], ctx: StepContext, scale: int) -> int:
        seen.update(
            run_id=ctx.run_id,
            step_name=ctx.step_name,
            metadata=ctx.metadata,
            artifacts=ctx.artifacts,
            input_digests=dict(ctx.input_digests),
        )
        ctx.log_metrics({"a": 1, "b": 2.5}, iteration=3)
        ctx.log_metric("c", 4)
        ctx.log_metric("d", 5, iteration=7)
        ctx.log_metrics({"e": 6})
        return sum(values) * scale

    task = _task(scaled, artifacts, values=[1, 2])
    started = time.time()
    outcome = execute(task, artifacts, lambda: metadata)
    assert outcome.ok and outcome.error is None and outcome.error_type is None
    assert started <= outcome.started_at <= outcome.ended_at <= time.time()
    assert seen == {
        "run_id": "run-1",
        "step_name": "scaled",
        "metadata": metadata,
        "artifacts": artifacts,
        "input_digests": {"values": task.arguments["values"].digest},
    }
    assert outcome.metrics == [
        ("a", 1.0, 3),
        ("b", 2.5, 3),
        ("c", 4.0, 0),
        ("d", 5.0, 7),
        ("e", 6.0, 0),
    ]
    assert all(isinstance(value, float) for _, value, _ in outcome.metrics)
    [out] = outcome.outputs
    assert (out.name, out.kind) == ("out", "json")
    assert artifacts.get(out.digest, out.kind) == 6


def test_attachments_follow_the_declared_outputs_and_never_repeat_a_name(
    artifacts: AbstractArtifactStore,
) -> None:
    @step(outputs=("a", "b"))
    def two(ctx: StepContext) -> dict[str, int]:
        ctx.attach("report", {"x": 1})
        for name in ("a", "report"):
            try:
                ctx.attach(name, 0)
            except ValueError as exc:
                assert str(exc) == f"step 'two' already has an output named {name!r}"
            else:
                raise AssertionError(f"attached {name} twice")
        return {"b": 2, "a": 1, "extra": 3}

    outcome = execute(StepTask(two, "r", {}), artifacts, lambda: None)
    assert outcome.ok, outcome.error
    assert [r.name for r in outcome.outputs] == ["a", "b", "report"]
    values = [artifacts.get(r.digest, r.kind) for r in outcome.outputs]
    assert values == [1, 2, {"x": 1}]
    sizes = [r.size for r in outcome.outputs]
    assert sizes == [len(artifacts.get_bytes(r.digest)) for r in outcome.outputs]


@pytest.mark.parametrize(
    ("returned", "error"),
    [
        ({"a": 1}, "TypeError: returned dict lacks declared outputs ['b']"),
        ({}, "TypeError: returned dict lacks declared outputs ['a', 'b']"),
        (
            (1, 2, 3),
            "TypeError: declares 2 outputs ['a', 'b'] but returned tuple; return a tuple of "
            "that length or a dict by name",
        ),
        (
            7,
            "TypeError: declares 2 outputs ['a', 'b'] but returned int; return a tuple of "
            "that length or a dict by name",
        ),
    ],
)
def test_outputs_that_do_not_match_the_declaration_fail_the_step(
    artifacts: AbstractArtifactStore, returned: Any, error: str
) -> None:
    @step(outputs=("a", "b"))
    def wrong() -> Any:
        return returned

    outcome = execute(StepTask(wrong, "r", {}), artifacts, lambda: None)
    assert (outcome.error, outcome.error_type) == (error, "TypeError")
    assert outcome.outputs == ()


@pytest.mark.parametrize("returned", [(1, 2), [1, 2]])
def test_several_outputs_come_back_in_declared_order(
    artifacts: AbstractArtifactStore, returned: Any
) -> None:
    @step(outputs=("a", "b"))
    def pair() -> Any:
        return returned

    outcome = execute(StepTask(pair, "r", {}), artifacts, lambda: None)
    assert [(r.name, artifacts.get(r.digest, r.kind)) for r in outcome.outputs] == [
        ("a", 1),
        ("b", 2),
    ]


def test_a_single_output_is_the_returned_value_whatever_it_is(
    artifacts: AbstractArtifactStore,
) -> None:
    @step(outputs="pair")
    def one() -> tuple[int, int]:
        return (1, 2)

    [out] = execute(StepTask(one, "r", {}), artifacts, lambda: None).outputs
    assert out.name == "pair" and artifacts.get(out.digest, out.kind) == (1, 2)


def test_a_failing_step_reports_its_error_type_traceback_and_what_it_kept(
    artifacts: AbstractArtifactStore,
) -> None:
    @step(outputs="out")
    def fails(ctx: StepContext) -> int:
        ctx.log_metric("loss", 0.5, iteration=2)
        ctx.attach("partial", [1])
        raise ConveyorError("the data ran out")

    outcome = execute(StepTask(fails, "r", {}), artifacts, lambda: None)
    assert not outcome.ok
    assert (outcome.error, outcome.error_type) == ("the data ran out", "ConveyorError")
    assert "Traceback" in (outcome.traceback or "") and "the data ran out" in (
        outcome.traceback or ""
    )
    assert outcome.metrics == [("loss", 0.5, 2)]
    assert [r.name for r in outcome.outputs] == ["partial"]
    assert outcome.started_at <= outcome.ended_at


# --- where steps execute ------------------------------------------------------------------------


def _thread_names(workers: int, artifacts: AbstractArtifactStore) -> list[str]:
    names: list[str] = []

    @step(outputs="where")
    def where() -> str:
        names.append(threading.current_thread().name)
        return names[-1]

    with LocalExecutor(artifacts, lambda: None, workers=workers) as executor:
        outcome = executor.submit(StepTask(where, "r", {})).result(timeout=30)
    assert outcome.ok
    return names


def test_one_worker_runs_steps_inline_and_more_on_named_threads(
    artifacts: AbstractArtifactStore,
) -> None:
    assert _thread_names(1, artifacts) == [threading.current_thread().name]
    for workers in (2, 3):
        [name] = _thread_names(workers, artifacts)
        assert name.startswith("conveyor-step") and name != threading.current_thread().name


@pytest.mark.parametrize("workers", [0, -1])
def test_fewer_than_one_worker_is_refused(artifacts: AbstractArtifactStore, workers: int) -> None:
    with pytest.raises(ValueError) as caught:
        LocalExecutor(artifacts, lambda: None, workers=workers)
    assert str(caught.value) == f"workers must be >= 1, got {workers}"


def test_closing_the_executor_waits_for_running_steps(artifacts: AbstractArtifactStore) -> None:
    release = threading.Event()

    @step(outputs="slow")
    def slow() -> int:
        release.wait(5)
        time.sleep(0.2)
        return 1

    executor = LocalExecutor(artifacts, lambda: None, workers=2)
    future = executor.submit(StepTask(slow, "r", {}))
    release.set()
    executor.close()
    assert future.done() and future.result().ok


def test_closing_the_executor_cancels_steps_not_yet_started(
    artifacts: AbstractArtifactStore,
) -> None:
    started = threading.Event()
    release = threading.Event()

    @step(outputs="block")
    def block() -> int:
        started.set()
        release.wait(5)
        return 1

    executor = LocalExecutor(artifacts, lambda: None, workers=2)
    running = [executor.submit(StepTask(block, "r", {})) for _ in range(2)]
    queued = executor.submit(StepTask(block, "r", {}))
    assert started.wait(5)
    closer = threading.Thread(target=executor.close)
    closer.start()
    deadline = time.monotonic() + 5
    while not queued.cancelled() and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    closer.join(10)
    assert queued.cancelled()
    assert all(f.result().ok for f in running)


def test_a_step_sees_the_id_of_its_run(runner: Runner) -> None:
    seen: list[str] = []

    @step(outputs="who")
    def who(ctx: StepContext) -> str:
        seen.append(ctx.run_id)
        return ctx.run_id

    result = runner.run(pipeline(who))
    assert seen == [result.run_id]
    assert runner.artifacts.get(result.outputs["who"].digest, "json") == result.run_id


def test_a_step_starts_as_soon_as_its_inputs_are_ready(
    metadata: SqlMetadataStore, artifacts: AbstractArtifactStore
) -> None:
    """With two workers, the step after a fast one starts while a slow independent step still
    runs: the scheduler wakes on the first step to finish, not on all of them."""
    follower_started = threading.Event()
    overlapped: list[bool] = []

    @step(outputs="slow")
    def slow_step() -> int:
        overlapped.append(follower_started.wait(10))
        return 1

    @step(outputs="fast")
    def fast_step() -> int:
        return 2

    @step(inputs={"value": "fast"}, outputs="follow")
    def follower(value: int) -> int:
        follower_started.set()
        return value

    with LocalExecutor(artifacts, lambda: metadata, workers=2) as executor:
        result = Runner(metadata, artifacts, executor).run(
            pipeline(slow_step, fast_step, follower), use_cache=False
        )
    assert result.ok
    assert overlapped == [True]


class FixedClockExecutor(AbstractExecutor):
    """Runs steps inline but reports the times a remote worker's clock would have said."""

    name = "fixed-clock"

    def __init__(self, artifacts: AbstractArtifactStore) -> None:
        self.artifacts = artifacts
        self.clock = 1000.0

    def submit(self, task: StepTask) -> Future[StepOutcome]:
        outcome = execute(task, self.artifacts, lambda: None)
        future: Future[StepOutcome] = Future()
        future.set_result(replace(outcome, started_at=self.clock, ended_at=self.clock + 5.0))
        self.clock += 100.0
        return future


def test_a_step_is_recorded_with_the_times_its_executor_reports(
    metadata: SqlMetadataStore, artifacts: AbstractArtifactStore
) -> None:
    hooks = Recorder()
    executor = FixedClockExecutor(artifacts)
    result = Runner(metadata, artifacts, executor, hooks=hooks).run(
        pipeline(numbers, add, broken), use_cache=False
    )
    record = metadata.get_run(result.run_id)
    assert record.executor == "fixed-clock"
    times = {s.name: (s.started_at, s.ended_at, s.duration) for s in record.steps}
    assert times == {
        "numbers": (1000.0, 1005.0, 5.0),
        "add": (1100.0, 1105.0, 5.0),
        "broken": (1200.0, 1205.0, 5.0),
    }
    durations = {s[0]: s[2] for s in hooks.seen[1:-1] if s[0] != "error"}
    assert durations == {"numbers": 5.0, "add": 5.0, "broken": 5.0}


def test_a_step_failing_without_a_message_says_unknown_error(runner: Runner) -> None:
    @step(outputs="mute")
    def mute() -> int:
        raise ConveyorError("")

    result = runner.run(pipeline(mute))
    assert result.failures == {"mute": "unknown error"}
    assert runner.metadata.get_run(result.run_id).steps[0].error == "unknown error"


def test_a_ready_step_listed_after_a_waiting_one_starts_at_once(
    metadata: SqlMetadataStore, artifacts: AbstractArtifactStore
) -> None:
    """After the fast step ends, the step after the slow one still waits; the step after the
    fast one, listed behind it, must start anyway."""
    second_started = threading.Event()
    overlapped: list[bool] = []

    @step(outputs="slow")
    def slow_step() -> int:
        overlapped.append(second_started.wait(10))
        return 1

    @step(outputs="fast")
    def fast_step() -> int:
        return 2

    @step(inputs={"value": "slow"}, outputs="after_slow")
    def after_slow(value: int) -> int:
        return value

    @step(inputs={"value": "fast"}, outputs="after_fast")
    def after_fast(value: int) -> int:
        second_started.set()
        return value

    p = pipeline(slow_step, fast_step, after_slow, after_fast)
    assert [s.name for s in p.steps] == ["slow_step", "fast_step", "after_slow", "after_fast"]
    with LocalExecutor(artifacts, lambda: metadata, workers=2) as executor:
        result = Runner(metadata, artifacts, executor).run(p, use_cache=False)
    assert result.ok
    assert overlapped == [True]


def test_the_cache_key_is_the_steps_key_under_this_conveyor_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = ArtifactRef("numbers", "a" * 64, "json", 1)
    key = step_cache.key_for(add, {"values": ref})
    assert key == cache_key(add, {"values": "a" * 64}, __version__)
    monkeypatch.setattr(step_cache, "__version__", __version__ + ".post1")
    assert step_cache.key_for(add, {"values": ref}) != key  # an upgrade recomputes every step


def test_a_run_reports_the_runs_it_found_abandoned(runner: Runner) -> None:
    """A run left "running" by a process that died is marked interrupted by the next run."""
    child = subprocess.Popen(["true"])
    child.wait()  # a reaped pid: no process has it
    dead, _ = runner.metadata.create_run("old", ["a"], executor="local")
    with runner.metadata._engine.begin() as conn:
        conn.execute(sa.update(t.runs).where(t.runs.c.id == dead).values(pid=child.pid))
    result = runner.run(pipeline(numbers))
    assert result.recovered == [dead]
    assert runner.metadata.get_run(dead).status is RunStatus.INTERRUPTED
    assert runner.run(pipeline(numbers)).recovered == []


@pytest.mark.parametrize("workers", [1, 2])
def test_steps_on_any_executor_reach_the_metadata_store(
    metadata: SqlMetadataStore, artifacts: AbstractArtifactStore, workers: int
) -> None:
    seen: list[Any] = []

    @step(outputs="runs")
    def count_runs(ctx: StepContext) -> int:
        seen.append(ctx.metadata)
        return len(ctx.metadata.list_runs())

    with LocalExecutor(artifacts, lambda: metadata, workers=workers) as executor:
        result = Runner(metadata, artifacts, executor).run(pipeline(count_runs))
    assert result.ok and seen == [metadata]
    assert artifacts.get(result.outputs["runs"].digest, "json") == 1
