"""Quality gates from config: ``f1: ">= 0.70"``, checked against a model's test metrics."""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from conveyor._config_values import GateRule, ValueProblem
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Gate:
    """One gate: ``metric op threshold``."""

    metric: str
    op: str
    threshold: float

    @property
    def rule(self) -> str:
        """The rule as written, normalised: ``>= 0.7``."""
        return f"{self.op} {self.threshold:g}"


@dataclass(frozen=True)
class GateResult:
    """A gate checked against a value."""

    metric: str
    rule: str
    value: float
    passed: bool

    def describe(self) -> str:
        """``f1 0.612 (needs >= 0.7)``."""
        return f"{self.metric} {self.value:.4g} (needs {self.rule})"


def parse_gates(gates: Mapping[str, str], *, where: str = "evaluation.gates") -> list[Gate]:
    """Parse ``{metric: "op number"}``: rules parsed at config load (``GateRule``, as in
    ``EvaluationConfig.gates``) are used as they are, plain text goes through the same parser.

    Raises:
        ConfigError: a rule is not ``>=``, ``>``, ``<=``, ``<`` or ``==`` followed by a number.
    """
    parsed = []
    for metric, text in gates.items():
        try:
            rule = GateRule.parse(text)
        except ValueProblem as exc:
            raise ConfigError(exc.located(f"{where}.{metric}")) from None
        parsed.append(Gate(metric, rule.op, rule.threshold))
    return parsed


def check_gates(gates: list[Gate], metrics: Mapping[str, float]) -> list[GateResult]:
    """Check each gate against ``metrics``.

    Raises:
        ConfigError: a gate names a metric the task does not produce.
    """
    results = []
    for gate in gates:
        if gate.metric not in metrics:
            raise ConfigError(
                f"evaluation.gates.{gate.metric}: no such metric for this model; "
                f"choose from {sorted(metrics)}"
            )
        value = float(metrics[gate.metric])
        results.append(
            GateResult(gate.metric, gate.rule, value, _OPS[gate.op](value, gate.threshold))
        )
    return results


_BASELINE_NAMES = {
    "most_frequent": "most frequent class",
    "prior": "most frequent class",
    "mean": "training mean",
    "median": "training median",
}


def check_baseline(
    metric: str,
    model: Mapping[str, float],
    baseline: Mapping[str, float],
    *,
    strategy: str,
) -> GateResult:
    """The default gate: the model's ``metric`` strictly better than the dummy baseline's
    (direction-aware). The rule names the baseline and its score, so a refusal gives both."""
    from conveyor.evaluation.metrics import higher_is_better

    value, floor = float(model[metric]), float(baseline[metric])
    higher = higher_is_better(metric)
    passed = value > floor if higher else value < floor
    name = _BASELINE_NAMES.get(strategy, strategy)
    rule = f"{'>' if higher else '<'} baseline {floor:.4g} ({name})"
    return GateResult(metric, rule, value, passed)


def as_dicts(results: list[GateResult]) -> list[dict[str, Any]]:
    """Gate results as plain dicts (for reports and artifacts)."""
    return [asdict(r) for r in results]
