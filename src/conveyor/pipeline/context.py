"""What a running step may ask of the line it runs in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Mapping

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
    def metadata(self) -> Any:
        """The run's metadata store (a ``SqlMetadataStore``), for stages that record things."""
        ...

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """Record numeric metrics for this step and run."""
        ...

    def attach(self, name: str, value: Any) -> None:
        """Store ``value`` as an extra output artifact of this step, kept even if it fails.

        For reports that explain a failure (a validation report, say). ``name`` must not be one
        of the step's declared outputs.
        """
        ...
