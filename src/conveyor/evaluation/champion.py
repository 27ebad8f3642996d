"""Champion/challenger: promote a new model only when it beats production by a margin."""

from __future__ import annotations

from conveyor.contracts import Decision
from conveyor.evaluation.metrics import higher_is_better

__all__ = ["Decision", "decide"]


def decide(
    challenger: float,
    champion: float | None,
    *,
    metric: str,
    min_improvement: float,
    champion_version: int | None = None,
) -> Decision:
    """Compare scores on the same test set; ``champion`` None means there is no champion.

    The challenger wins when its improvement is positive and at least ``min_improvement``
    (direction-aware: for losses such as ``rmse`` lower is better).
    """
    if champion is None:
        reason = (
            "no current champion"
            if champion_version is None
            else f"champion v{champion_version} could not be scored"
        )
        return Decision(
            promote=True,
            reason=reason,
            metric=metric,
            challenger=challenger,
            champion_version=champion_version,
        )
    gain = challenger - champion if higher_is_better(metric) else champion - challenger
    won = gain > 0 and gain >= min_improvement - 1e-12  # float noise: 0.82 - 0.80 < 0.02
    verdict = "beats" if won else "does not beat"
    reason = (
        f"{metric} {challenger:.4f} {verdict} champion v{champion_version} "
        f"{champion:.4f} by the required {min_improvement:g} (gain {gain:+.4f})"
    )
    return Decision(
        promote=won,
        reason=reason,
        metric=metric,
        challenger=challenger,
        champion=champion,
        champion_version=champion_version,
    )
