"""Hooks a caller (the CLI's progress display, tests) can attach to a run."""

from __future__ import annotations

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
