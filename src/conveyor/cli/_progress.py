"""Live per-step progress for ``conveyor run``: a table on terminals, else a line per step."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from conveyor.cli._output import fmt_seconds, styled
from conveyor.runner import RunHooks

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

    from conveyor.pipeline import Pipeline
    from conveyor.runner import RunResult
    from conveyor.store.metadata import StepStatus


class LiveProgress(RunHooks):
    """Shows each step's status and timing as the run goes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.rows: dict[str, list[Any]] = {}  # step -> [status, duration, started]
        self.live: Live | None = None
        self.run_id = ""

    def before_pipeline_run(self, run_id: str, pipeline: Pipeline) -> None:
        self.run_id = run_id
        self.rows = {s.name: ["pending", None, None] for s in pipeline.steps}
        self.console.print(
            f"run [bold]{run_id[:8]}[/] of [bold]{pipeline.name}[/] ({len(pipeline.steps)} steps)"
        )
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(
                self._table(),
                console=self.console,
                refresh_per_second=8,
                get_renderable=self._table,
            )
            self.live.start()

    def before_step_run(self, step_name: str) -> None:
        self.rows[step_name][0] = "running"
        self.rows[step_name][2] = time.monotonic()

    def after_step_run(self, step_name: str, status: StepStatus, duration: float | None) -> None:
        self.rows[step_name][0:2] = [str(status), duration]
        if self.live is None:
            self.console.print(
                f"  {step_name:<24} {styled(str(status)):<30} {fmt_seconds(duration)}"
            )

    def on_step_error(self, step_name: str, error: str) -> None:
        if self.live is None:
            self.console.print(f"  [red]{step_name}: {escape(error)}[/]", soft_wrap=True)

    def after_pipeline_run(self, result: RunResult) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the live display (also on interrupt)."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("step")
        table.add_column("status")
        table.add_column("time", justify="right")
        now = time.monotonic()
        for name, (status, duration, started) in self.rows.items():
            if status == "running" and started is not None:
                duration = now - started
            table.add_row(name, styled(status), fmt_seconds(duration))
        return table
