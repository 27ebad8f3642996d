"""What a running step may ask of the line it runs in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Mapping

    from conveyor.contracts import StepRecorder

CONTEXT_PARAMETER = "ctx"


@runtime_checkable
class StepContext(Protocol):
    """Handed to a step function that declares a parameter named ``ctx``.

    Metrics logged here are recorded with the step when it succeeds (and copied to later runs
    that reuse the step from the cache).
    """

    @property
    def run_id(self) -> str:
        """The id of the run executing the step."""
        ...

    @property
    def step_name(self) -> str:
        """The name of the running step."""
        ...

    @property
    def input_digests(self) -> Mapping[str, str]:
        """Argument name -> SHA-256 of the artifact the step received for it."""
        ...

    @property
    def metadata(self) -> StepRecorder:
        """The run's metadata store, for stages that record things."""
        ...

    @property
    def artifacts(self) -> Any:
        """The run's artifact store, for stages that load recorded artifacts (a champion)."""
        ...

    def log_metrics(self, metrics: Mapping[str, float], *, iteration: int = 0) -> None:
        """Record numeric metrics for this step and run (kept in memory, written in one bulk
        insert when the step ends)."""
        ...

    def log_metric(self, key: str, value: float, *, iteration: int = 0) -> None:
        """Record one value of a series (e.g. a loss per epoch), buffered like log_metrics."""
        ...

    def attach(self, name: str, value: Any) -> None:
        """Store ``value`` as an extra output artifact of this step, kept even if it fails.

        For reports that explain a failure (a validation report, say). ``name`` must not be one
        of the step's declared outputs.
        """
        ...
