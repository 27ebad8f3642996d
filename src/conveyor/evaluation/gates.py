"""Quality gates from config: ``f1: ">= 0.70"``, checked against a model's test metrics."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor._config_values import GateRule, ValueProblem
from conveyor.contracts import GateCheck
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


def check_gates(gates: list[Gate], metrics: Mapping[str, float]) -> list[GateCheck]:
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
            GateCheck(
                metric=gate.metric,
                rule=gate.rule,
                value=value,
                passed=_OPS[gate.op](value, gate.threshold),
            )
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
) -> GateCheck:
    """The default gate: the model's ``metric`` strictly better than the dummy baseline's
    (direction-aware). The rule names the baseline and its score, so a refusal gives both."""
    from conveyor.evaluation.metrics import higher_is_better

    value, floor = float(model[metric]), float(baseline[metric])
    higher = higher_is_better(metric)
    passed = value > floor if higher else value < floor
    name = _BASELINE_NAMES.get(strategy, strategy)
    rule = f"{'>' if higher else '<'} baseline {floor:.4g} ({name})"
    return GateCheck(metric=metric, rule=rule, value=value, passed=passed)
