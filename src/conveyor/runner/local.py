"""Run steps in this process: inline, or on a thread pool so independent steps overlap."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from conveyor.runner._execute import execute
from conveyor.runner.base import AbstractExecutor

if TYPE_CHECKING:
    from collections.abc import Callable

    from conveyor.runner.base import StepOutcome, StepTask
    from conveyor.store.artifacts import AbstractArtifactStore


class LocalExecutor(AbstractExecutor):
    """Executes steps in the current process.

    Args:
        artifacts: where inputs are read and outputs written.
        metadata: returns the metadata store, for steps that take ``ctx``.
        workers: 1 runs steps inline, one after another; more runs independent steps on threads.
    """

    name = "local"

    def __init__(
        self, artifacts: AbstractArtifactStore, metadata: Callable[[], Any], *, workers: int = 1
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._artifacts = artifacts
        self._metadata = metadata
        self._pool = ThreadPoolExecutor(workers, "conveyor-step") if workers > 1 else None

    def submit(self, task: StepTask) -> Future[StepOutcome]:
        if self._pool is not None:
            return self._pool.submit(execute, task, self._artifacts, self._metadata)
        future: Future[StepOutcome] = Future()
        future.set_result(execute(task, self._artifacts, self._metadata))
        return future

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
