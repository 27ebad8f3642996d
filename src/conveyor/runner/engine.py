"""The runner: schedules a pipeline's steps on an executor and records everything."""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.errors import MissingInputError
from conveyor.runner._book import StepBook
from conveyor.runner.hooks import as_hooks
from conveyor.store.metadata import ArtifactRef, RunStatus, StepStatus

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from concurrent.futures import Future

    from conveyor.pipeline import Pipeline, Step
    from conveyor.runner.base import AbstractExecutor, StepOutcome
    from conveyor.runner.hooks import RunHooks
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import RunStore


@dataclass
class RunResult:
    """How a run ended: its status, each step's status, the datasets it produced, its errors."""

    run_id: str
    status: RunStatus
    steps: dict[str, StepStatus] = field(default_factory=dict)
    outputs: dict[str, ArtifactRef] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    gated: set[str] = field(default_factory=set)  # steps that failed a quality gate
    recovered: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every step succeeded or was reused from the cache."""
        return self.status is RunStatus.SUCCEEDED


class Runner:
    """Runs pipelines against a metadata store and an artifact store.

    Args:
        metadata: where runs, steps, lineage and metrics are recorded.
        artifacts: where step outputs are stored.
        executor: where steps execute (``LocalExecutor``, ``DaskExecutor``).
        hooks: callbacks (progress display, tracking): one ``RunHooks`` or a sequence of
            them; every hook gets every event, in the order given.
    """

    def __init__(
        self,
        metadata: RunStore,
        artifacts: AbstractArtifactStore,
        executor: AbstractExecutor,
        *,
        hooks: RunHooks | Iterable[RunHooks] | None = None,
    ) -> None:
        self.metadata = metadata
        self.artifacts = artifacts
        self.executor = executor
        self.hooks = as_hooks(hooks)

    def run(
        self,
        pipeline: Pipeline,
        *,
        inputs: Mapping[str, Any] | None = None,
        use_cache: bool = True,
        params: Mapping[str, Any] | None = None,
        git_commit: str | None = None,
        config_hash: str | None = None,
    ) -> RunResult:
        """Run ``pipeline`` and return how it ended (failures are reported, not raised).

        Runs left ``running`` by a process that died are first marked interrupted. On
        ``KeyboardInterrupt`` the run is recorded as interrupted and the interrupt re-raised.

        Raises:
            MissingInputError: a pipeline input was not supplied.
        """
        inputs = dict(inputs or {})
        missing = sorted(pipeline.inputs - set(inputs))
        if missing:
            raise MissingInputError(f"pipeline {pipeline.name!r} needs inputs {missing}")
        recovered = self.metadata.recover_interrupted()
        run_id, step_ids = self.metadata.create_run(
            pipeline.name,
            [s.name for s in pipeline.steps],
            executor=self.executor.name,
            params=params,
            git_commit=git_commit,
            config_hash=config_hash,
        )
        result = RunResult(run_id, RunStatus.RUNNING, recovered=recovered)
        self.hooks.before_pipeline_run(run_id, pipeline)
        try:
            available = self._store_inputs(inputs)
            _Schedule(self, pipeline, run_id, step_ids, result, available, use_cache).run()
        except BaseException:
            self.metadata.finish_run(run_id, RunStatus.INTERRUPTED, error="interrupted")
            result.status = RunStatus.INTERRUPTED
            raise
        result.status = _final_status(result)
        error = "; ".join(f"{k}: {v}" for k, v in result.failures.items()) or None
        self.metadata.finish_run(run_id, result.status, error=error)
        self.hooks.after_pipeline_run(result)
        return result

    def _store_inputs(self, inputs: Mapping[str, Any]) -> dict[str, ArtifactRef]:
        refs = {}
        for name, value in inputs.items():
            stored = self.artifacts.put(value)
            refs[name] = ArtifactRef(name, stored.digest, stored.kind, stored.size)
        self.metadata.record_artifacts(refs.values())
        return refs


class _Schedule:
    """One run's scheduling loop: start every ready step, record each as it ends."""

    def __init__(
        self,
        runner: Runner,
        pipeline: Pipeline,
        run_id: str,
        step_ids: dict[str, int],
        result: RunResult,
        available: dict[str, ArtifactRef],
        use_cache: bool,
    ) -> None:
        self.r = runner
        self.pipeline = pipeline
        self.step_ids = step_ids
        self.result = result
        self.available = available
        self.book = StepBook(
            runner.metadata,
            runner.artifacts,
            runner.executor,
            runner.hooks,
            run_id,
            step_ids,
            use_cache,
        )
        self.waiting = [s.name for s in pipeline.steps]
        self.running: dict[Future[StepOutcome], tuple[Step, dict[str, ArtifactRef]]] = {}

    def run(self) -> None:
        try:
            self._loop()
        except BaseException:
            self._record_finished()  # keep work that completed before the interrupt
            raise

    def _record_finished(self) -> None:
        for future in [f for f in self.running if f.done()]:
            s, arguments = self.running.pop(future)
            self._record(s, arguments, future.result())

    def _loop(self) -> None:
        while self.waiting or self.running:
            self._start_ready()
            if not self.running:
                break
            done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
            for future in done:
                s, arguments = self.running.pop(future)
                self._record(s, arguments, future.result())

    def _start_ready(self) -> None:
        progressed = True
        while progressed:  # cache hits free their dependants at once
            progressed = False
            for name in list(self.waiting):
                s = self.pipeline[name]
                if not all(d in self.available for d in s.inputs.values()):
                    continue
                self.waiting.remove(name)
                arguments = {arg: self.available[d] for arg, d in s.inputs.items()}
                started = self.book.start(s, arguments)
                if isinstance(started, tuple):  # served from the cache
                    self._publish(s.name, started, StepStatus.CACHED, 0.0)
                    progressed = True
                else:
                    self.running[started] = (s, arguments)

    def _record(self, s: Step, arguments: dict[str, ArtifactRef], outcome: StepOutcome) -> None:
        self.book.finish(s, arguments, outcome)
        duration = outcome.ended_at - outcome.started_at
        if outcome.ok:
            self._publish(s.name, outcome.outputs, StepStatus.SUCCEEDED, duration)
            return
        error = outcome.error or "unknown error"
        self.result.outputs.update({ref.name: ref for ref in outcome.outputs})  # attachments
        self.result.failures[s.name] = error
        if outcome.gated:
            self.result.gated.add(s.name)
        self.result.steps[s.name] = StepStatus.FAILED
        self.r.hooks.on_step_error(s.name, error)
        self.r.hooks.after_step_run(s.name, StepStatus.FAILED, duration)
        downstream = self.pipeline.downstream(s.name)
        for name in [n for n in self.waiting if n in downstream]:
            self.waiting.remove(name)
            self.r.metadata.skip_step(
                self.step_ids[name], reason=f"upstream step {s.name!r} failed"
            )
            self.result.steps[name] = StepStatus.SKIPPED
            self.r.hooks.after_step_run(name, StepStatus.SKIPPED, None)

    def _publish(
        self, name: str, outputs: tuple[ArtifactRef, ...], status: StepStatus, duration: float
    ) -> None:
        for ref in outputs:
            self.available[ref.name] = ref
            self.result.outputs[ref.name] = ref
        self.result.steps[name] = status
        self.r.hooks.after_step_run(name, status, duration)


def _final_status(result: RunResult) -> RunStatus:
    """Succeeded; gated when the only failures are quality gates; failed otherwise."""
    if not result.failures:
        return RunStatus.SUCCEEDED
    return RunStatus.GATED if set(result.failures) == result.gated else RunStatus.FAILED
