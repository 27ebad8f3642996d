"""Runners execute pipelines against the stores: in this process or on a Dask cluster."""

from __future__ import annotations

from conveyor.runner.base import AbstractExecutor, FailureKind, StepOutcome, StepTask
from conveyor.runner.engine import Runner, RunResult
from conveyor.runner.hooks import HookList, RunHooks
from conveyor.runner.local import LocalExecutor

__all__ = [
    "AbstractExecutor",
    "FailureKind",
    "HookList",
    "LocalExecutor",
    "RunHooks",
    "RunResult",
    "Runner",
    "StepOutcome",
    "StepTask",
]
