"""A run takes a list of hooks, and a gated step is recognised by type, not by class name."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

from conveyor.errors import GateFailedError
from conveyor.pipeline import Pipeline, pipeline, step
from conveyor.runner import FailureKind, HookList, LocalExecutor, RunHooks, Runner, StepTask
from conveyor.runner._execute import execute
from conveyor.store.metadata import RunStatus

if TYPE_CHECKING:
    from conveyor.runner import RunResult
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import SqlMetadataStore, StepStatus


class Recorder(RunHooks):
    def __init__(self, label: str, log: list[tuple[Any, ...]]) -> None:
        self.label = label
        self.log = log

    def before_pipeline_run(self, run_id: str, pipeline: Pipeline) -> None:
        self.log.append((self.label, "start"))

    def before_step_run(self, step_name: str) -> None:
        self.log.append((self.label, "before", step_name))

    def after_step_run(self, step_name: str, status: StepStatus, duration: float | None) -> None:
        self.log.append((self.label, str(status), step_name))

    def on_step_error(self, step_name: str, error: str) -> None:
        self.log.append((self.label, "error", step_name))

    def after_pipeline_run(self, result: RunResult) -> None:
        self.log.append((self.label, "end"))


@step
def values() -> list[int]:
    return [1, 2]


@step
def gate(values: list[int]) -> int:
    raise GateFailedError(f"f1 {len(values)} below 0.9")


class GateFailedErrorLookalike(Exception):
    pass


GateFailedErrorLookalike.__name__ = "GateFailedError"  # the old string check would be fooled


@step(name="gate")
def impostor(values: list[int]) -> int:
    raise GateFailedErrorLookalike("a bug, not a verdict")


def _run(
    stores: tuple[SqlMetadataStore, AbstractArtifactStore], line: Pipeline, hooks: Any = None
) -> RunResult:
    metadata, artifacts = stores
    with LocalExecutor(artifacts, lambda: metadata) as executor:
        return Runner(metadata, artifacts, executor, hooks=hooks).run(line)


def test_every_hook_in_a_list_gets_every_event_in_order(
    stores: tuple[SqlMetadataStore, AbstractArtifactStore],
) -> None:
    log: list[tuple[Any, ...]] = []
    _run(stores, pipeline(values, gate), [Recorder("a", log), Recorder("b", log)])

    events = [e[1:] for e in log if e[0] == "a"]
    assert events == [
        ("start",),
        ("before", "values"),
        ("succeeded", "values"),
        ("before", "gate"),
        ("error", "gate"),
        ("failed", "gate"),
        ("end",),
    ]
    assert [e[1:] for e in log if e[0] == "b"] == events
    # each event reaches a, then b, before the next event happens
    assert [e[0] for e in log] == ["a", "b"] * len(events)


def test_a_single_hook_a_hook_list_and_nested_lists_all_work(
    stores: tuple[SqlMetadataStore, AbstractArtifactStore],
) -> None:
    single: list[tuple[Any, ...]] = []
    nested: list[tuple[Any, ...]] = []
    _run(stores, pipeline(values), Recorder("one", single))
    _run(stores, pipeline(values), (HookList([Recorder("n", nested)]), Recorder("m", nested)))

    assert single == [
        ("one", "start"),
        ("one", "before", "values"),
        ("one", "succeeded", "values"),
        ("one", "end"),
    ]
    assert nested == [
        ("n", "start"),
        ("m", "start"),
        ("n", "cached", "values"),
        ("m", "cached", "values"),
        ("n", "end"),
        ("m", "end"),
    ]


def test_a_gate_failure_is_typed_and_gates_the_run(
    stores: tuple[SqlMetadataStore, AbstractArtifactStore],
) -> None:
    result = _run(stores, pipeline(values, gate))
    assert result.gated == {"gate"}
    assert result.status is RunStatus.GATED


def test_an_exception_merely_named_like_a_gate_is_a_failure(
    stores: tuple[SqlMetadataStore, AbstractArtifactStore],
) -> None:
    result = _run(stores, pipeline(values, impostor))
    assert result.gated == set()
    assert result.status is RunStatus.FAILED


def test_the_failure_kind_survives_pickling_as_on_dask(
    stores: tuple[SqlMetadataStore, AbstractArtifactStore],
) -> None:
    metadata, artifacts = stores
    first = _run(stores, pipeline(values))
    task = StepTask(gate, "run", {"values": first.outputs["values"]})
    outcome = pickle.loads(pickle.dumps(execute(task, artifacts, lambda: metadata)))

    assert outcome.failure is FailureKind.GATED and outcome.gated
    assert not outcome.ok
