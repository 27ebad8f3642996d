"""Hooks a caller (the CLI's progress display, tests) can attach to a run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.pipeline import Pipeline
    from conveyor.runner.engine import RunResult
    from conveyor.store.metadata import StepStatus


class RunHooks:
    """No-op hooks; override the events you care about."""

    def before_pipeline_run(self, run_id: str, pipeline: Pipeline) -> None:
        """The run is recorded and about to start."""

    def before_step_run(self, step_name: str) -> None:
        """A step was sent to the executor."""

    def after_step_run(self, step_name: str, status: StepStatus, duration: float | None) -> None:
        """A step ended: succeeded, cached, failed or skipped."""

    def on_step_error(self, step_name: str, error: str) -> None:
        """A step raised; ``error`` is the message shown to people."""

    def after_pipeline_run(self, result: RunResult) -> None:
        """The run ended."""


class HookList(RunHooks):
    """Several hooks as one: every event goes to each hook, in the order given.

    Args:
        hooks: the hooks to call.
    """

    def __init__(self, hooks: Iterable[RunHooks]) -> None:
        self.hooks: tuple[RunHooks, ...] = tuple(hooks)

    def before_pipeline_run(self, run_id: str, pipeline: Pipeline) -> None:
        for hook in self.hooks:
            hook.before_pipeline_run(run_id, pipeline)

    def before_step_run(self, step_name: str) -> None:
        for hook in self.hooks:
            hook.before_step_run(step_name)

    def after_step_run(self, step_name: str, status: StepStatus, duration: float | None) -> None:
        for hook in self.hooks:
            hook.after_step_run(step_name, status, duration)

    def on_step_error(self, step_name: str, error: str) -> None:
        for hook in self.hooks:
            hook.on_step_error(step_name, error)

    def after_pipeline_run(self, result: RunResult) -> None:
        for hook in self.hooks:
            hook.after_pipeline_run(result)


def as_hooks(hooks: RunHooks | Iterable[RunHooks] | None) -> RunHooks:
    """One hooks object from none, one, or a sequence of them (called in order)."""
    if hooks is None:
        return RunHooks()
    if isinstance(hooks, RunHooks) or not isinstance(hooks, Iterable):
        return hooks  # a single (possibly duck-typed) hooks object
    return HookList(hooks)
