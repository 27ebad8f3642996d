"""Running one step: load inputs, call the function, store outputs. Same code on every executor."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, GateFailedError
from conveyor.pipeline.context import CONTEXT_PARAMETER
from conveyor.runner.base import FailureKind, StepOutcome
from conveyor.store.metadata import ArtifactRef

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from conveyor.pipeline import Step
    from conveyor.runner.base import StepTask
    from conveyor.store.artifacts import AbstractArtifactStore


@dataclass
class _Context:
    """The :class:`~conveyor.pipeline.StepContext` given to steps that ask for ``ctx``."""

    run_id: str
    step_name: str
    _metadata: Callable[[], Any]
    _artifacts: AbstractArtifactStore
    _declared: tuple[str, ...]
    input_digests: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int]] = field(default_factory=list)
    attached: list[ArtifactRef] = field(default_factory=list)

    @property
    def metadata(self) -> Any:
        return self._metadata()

    @property
    def artifacts(self) -> AbstractArtifactStore:
        return self._artifacts

    def log_metrics(self, metrics: Mapping[str, float], *, iteration: int = 0) -> None:
        self.metrics.extend((key, float(value), iteration) for key, value in metrics.items())

    def log_metric(self, key: str, value: float, *, iteration: int = 0) -> None:
        self.metrics.append((key, float(value), iteration))

    def attach(self, name: str, value: Any) -> None:
        if name in self._declared or any(ref.name == name for ref in self.attached):
            raise ValueError(f"step {self.step_name!r} already has an output named {name!r}")
        self.attached.append(_store(self._artifacts, name, value))


def execute(
    task: StepTask, artifacts: AbstractArtifactStore, metadata: Callable[[], Any]
) -> StepOutcome:
    """Run ``task``; every exception becomes a failed outcome with its traceback."""
    step = task.step
    started = time.time()
    ctx = _Context(
        task.run_id,
        step.name,
        metadata,
        artifacts,
        step.outputs,
        {arg: ref.digest for arg, ref in task.arguments.items()},
    )
    try:
        kwargs = {arg: artifacts.get(ref.digest, ref.kind) for arg, ref in task.arguments.items()}
        if step.wants_context:
            kwargs[CONTEXT_PARAMETER] = ctx
        result = step.func(**kwargs, **step.params)
        outputs = tuple(
            _store(artifacts, name, value) for name, value in _split_outputs(step, result)
        )
    except Exception as exc:
        # conveyor's own errors are written for people; others need their type to make sense
        message = str(exc) if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}"
        return StepOutcome(
            started_at=started,
            ended_at=time.time(),
            outputs=tuple(ctx.attached),
            metrics=ctx.metrics,  # a crashed training loop keeps its curve
            error=message,
            traceback=traceback.format_exc(),
            error_type=type(exc).__name__,
            failure=FailureKind.GATED if isinstance(exc, GateFailedError) else FailureKind.ERROR,
        )
    return StepOutcome(
        started_at=started,
        ended_at=time.time(),
        outputs=(*outputs, *ctx.attached),
        metrics=ctx.metrics,
    )


def _store(artifacts: AbstractArtifactStore, name: str, value: Any) -> ArtifactRef:
    stored = artifacts.put(value)
    return ArtifactRef(name=name, digest=stored.digest, kind=stored.kind, size=stored.size)


def _split_outputs(step: Step, result: Any) -> list[tuple[str, Any]]:
    if len(step.outputs) == 1:
        return [(step.outputs[0], result)]
    if isinstance(result, dict):
        missing = set(step.outputs) - set(result)
        if missing:
            raise TypeError(f"returned dict lacks declared outputs {sorted(missing)}")
        return [(name, result[name]) for name in step.outputs]
    if isinstance(result, tuple | list) and len(result) == len(step.outputs):
        return list(zip(step.outputs, result, strict=True))
    raise TypeError(
        f"declares {len(step.outputs)} outputs {list(step.outputs)} but returned "
        f"{type(result).__name__}; return a tuple of that length or a dict by name"
    )
