"""The executor interface: run one step's task somewhere and hand back its outcome."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import Future

    from conveyor.pipeline import Step
    from conveyor.store.metadata import ArtifactRef


@dataclass(frozen=True)
class StepTask:
    """Everything an executor needs to run one step, picklable for remote workers."""

    step: Step
    run_id: str
    arguments: dict[str, ArtifactRef]  # function argument -> input artifact


class FailureKind(StrEnum):
    """Why a step failed: an error, or a quality gate it did not pass (a verdict, not a bug)."""

    ERROR = "error"
    GATED = "gated"


@dataclass(frozen=True)
class StepOutcome:
    """What running a step produced: output artifacts and metrics, or an error."""

    started_at: float
    ended_at: float
    outputs: tuple[ArtifactRef, ...] = ()
    metrics: list[tuple[str, float, int]] = field(default_factory=list)  # key, value, iteration
    error: str | None = None
    traceback: str | None = None
    error_type: str | None = None  # the exception's class name, for people reading records
    failure: FailureKind | None = None  # set with ``error``; GATED for a GateFailedError

    @property
    def ok(self) -> bool:
        """Whether the step succeeded."""
        return self.error is None

    @property
    def gated(self) -> bool:
        """Whether the step failed a quality gate."""
        return self.failure is FailureKind.GATED


class AbstractExecutor(ABC):
    """Runs step tasks; each call to :meth:`submit` returns a future of the outcome."""

    name: str = "abstract"

    @abstractmethod
    def submit(self, task: StepTask) -> Future[StepOutcome]:
        """Start ``task``; the future resolves to its :class:`StepOutcome` (never raises)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most executors hold nothing
        """Release workers and connections."""

    def __enter__(self) -> AbstractExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
