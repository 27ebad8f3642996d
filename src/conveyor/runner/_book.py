"""Recording one step of a run: a cache hit, or a start and an outcome.

Shared by the whole-run scheduler (``engine``) and the one-step runs an orchestrator drives
(``orchestrated``), so both write the same records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.runner import cache
from conveyor.runner.base import StepTask
from conveyor.store.metadata import ArtifactRef

if TYPE_CHECKING:
    from concurrent.futures import Future

    from conveyor.pipeline import Step
    from conveyor.runner.base import AbstractExecutor, StepOutcome
    from conveyor.runner.hooks import RunHooks
    from conveyor.store.artifacts import AbstractArtifactStore
    from conveyor.store.metadata import RunStore


@dataclass
class StepBook:
    """Writes a run's step records; ``start`` either serves a step from the cache or submits it."""

    metadata: RunStore
    artifacts: AbstractArtifactStore
    executor: AbstractExecutor
    hooks: RunHooks
    run_id: str
    step_ids: dict[str, int]
    use_cache: bool

    def start(
        self, s: Step, arguments: dict[str, ArtifactRef]
    ) -> tuple[ArtifactRef, ...] | Future[StepOutcome]:
        """The outputs of a cache hit (already recorded), or the future of the submitted step."""
        parts = cache.parts_for(s, arguments)
        mode = cache.mode_for(s, use_cache=self.use_cache)
        recorded = cache.recorded(parts, s, mode)
        if mode is cache.CacheMode.ON:
            hit = cache.lookup(parts.key, self.metadata, self.artifacts)
            if hit is not None:
                self.metadata.cache_step(
                    self.step_ids[s.name],
                    hit,
                    cache_key=parts.key,
                    inputs=named_inputs(s, arguments),
                    key_parts=recorded,
                )
                return hit.outputs
        self.metadata.start_step(self.step_ids[s.name], cache_key=parts.key, key_parts=recorded)
        self.hooks.before_step_run(s.name)
        return self.executor.submit(StepTask(s, self.run_id, arguments))

    def finish(self, s: Step, arguments: dict[str, ArtifactRef], outcome: StepOutcome) -> None:
        """Record how a submitted step ended: its lineage and metrics, or its error."""
        step_id = self.step_ids[s.name]
        if outcome.ok:
            self.metadata.complete_step(
                step_id,
                inputs=named_inputs(s, arguments),
                outputs=outcome.outputs,
                metrics=outcome.metrics,
                started_at=outcome.started_at,
                ended_at=outcome.ended_at,
            )
            return
        self.metadata.fail_step(
            step_id,
            error=outcome.error or "unknown error",
            traceback=outcome.traceback,
            started_at=outcome.started_at,
            ended_at=outcome.ended_at,
            outputs=outcome.outputs,
            metrics=outcome.metrics,
        )


def named_inputs(s: Step, arguments: dict[str, ArtifactRef]) -> list[ArtifactRef]:
    """Input refs named by dataset (as lineage records them)."""
    return [
        ArtifactRef(s.inputs[arg], ref.digest, ref.kind, ref.size) for arg, ref in arguments.items()
    ]
