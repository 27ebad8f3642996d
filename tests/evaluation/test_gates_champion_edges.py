"""Gates and the champion decision at their edges: signed and exponent thresholds, the
baseline gate in both directions, the exact words of every verdict (they are the audit trail)."""

from __future__ import annotations

import pytest

from conveyor.contracts import GateCheck
from conveyor.errors import ConfigError
from conveyor.evaluation.champion import Decision, decide
from conveyor.evaluation.gates import (
    Gate,
    check_baseline,
    check_gates,
    parse_gates,
)


@pytest.mark.parametrize(
    ("rule", "gate"),
    [
        (">= 0.70", Gate("m", ">=", 0.7)),
        ("  <=1.5  ", Gate("m", "<=", 1.5)),
        ("> -0.5", Gate("m", ">", -0.5)),
        ("< +2", Gate("m", "<", 2.0)),
        ("== .25", Gate("m", "==", 0.25)),
        ("< 1e-2", Gate("m", "<", 0.01)),
        ("> -2.5E+3", Gate("m", ">", -2500.0)),
        ("<= 3.", Gate("m", "<=", 3.0)),
    ],
)
def test_a_rule_parses_to_its_operator_and_signed_threshold(rule: str, gate: Gate) -> None:
    assert parse_gates({"m": rule}) == [gate]


def test_gates_keep_their_order_and_metric_names() -> None:
    gates = parse_gates({"f1": ">= 0.7", "rmse": "< 3", "auc": "> 0.5"})
    assert [(g.metric, g.op, g.threshold) for g in gates] == [
        ("f1", ">=", 0.7),
        ("rmse", "<", 3.0),
        ("auc", ">", 0.5),
    ]


def test_a_malformed_rule_says_where_and_how_to_write_one() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_gates({"f1": "at least 0.7"}, where="train.gates")
    assert str(caught.value) == (
        "train.gates.f1: 'at least 0.7' is not a gate; write e.g. \">= 0.70\" "
        "(operators >= > <= < ==)"
    )


def test_a_number_that_is_not_text_is_still_read_as_a_rule() -> None:
    with pytest.raises(ConfigError, match=r"evaluation\.gates\.f1: 0\.7 is not a gate"):
        parse_gates({"f1": 0.7})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("rule", "value", "passed"),
    [
        ("> -0.5", -0.4, True),
        ("> -0.5", -0.6, False),
        ("< 1e-2", 0.5, False),
        ("< 1e-2", 0.005, True),
        ("<= 0.3", 0.3, True),
        ("< 0.3", 0.3, False),
        ("== 0.5", 0.5000001, False),
        (">= 0.7", 0.6999, False),
    ],
)
def test_a_gate_compares_the_value_with_the_signed_threshold(
    rule: str, value: float, passed: bool
) -> None:
    [result] = check_gates(parse_gates({"m": rule}), {"m": value})
    assert result == GateCheck(
        metric="m", rule=parse_gates({"m": rule})[0].rule, value=value, passed=passed
    )


def test_results_name_the_rule_normalised_and_take_ints() -> None:
    gates = parse_gates({"f1": ">=0.70", "n": "< 1e3"})
    results = check_gates(gates, {"f1": 1, "n": 999, "other": 0.0})
    assert results == [
        GateCheck(metric="f1", rule=">= 0.7", value=1.0, passed=True),
        GateCheck(metric="n", rule="< 1000", value=999.0, passed=True),
    ]
    assert isinstance(results[0].value, float)
    assert [r.describe() for r in results] == ["f1 1 (needs >= 0.7)", "n 999 (needs < 1000)"]


def test_an_unknown_metric_names_the_gate_and_the_sorted_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        check_gates(parse_gates({"auc": ">= 0.5"}), {"roc_auc": 0.8, "f1": 0.7})
    assert str(caught.value) == (
        "evaluation.gates.auc: no such metric for this model; choose from ['f1', 'roc_auc']"
    )


def test_gate_checks_are_plain_records_as_json() -> None:
    results = [
        GateCheck(metric="f1", rule=">= 0.7", value=0.8, passed=True),
        GateCheck(metric="mae", rule="< 2", value=3.0, passed=False),
    ]
    assert [r.to_json() for r in results] == [
        {"metric": "f1", "rule": ">= 0.7", "value": 0.8, "passed": True},
        {"metric": "mae", "rule": "< 2", "value": 3.0, "passed": False},
    ]


# --- the baseline gate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "passed"),
    [(0.80, True), (0.60, False), (0.6123456, False), (0.61234567, True)],
)
def test_baseline_gate_wants_a_higher_score_strictly_above_the_dummy(
    model: float, passed: bool
) -> None:
    result = check_baseline("f1", {"f1": model}, {"f1": 0.6123456}, strategy="most_frequent")
    assert result == GateCheck(
        metric="f1", rule="> baseline 0.6123 (most frequent class)", value=model, passed=passed
    )


@pytest.mark.parametrize(("model", "passed"), [(2.0, True), (9.0, False), (3.5, False)])
def test_baseline_gate_wants_a_loss_strictly_below_the_dummy(model: float, passed: bool) -> None:
    result = check_baseline("rmse", {"rmse": model}, {"rmse": 3.5}, strategy="mean")
    assert result == GateCheck(
        metric="rmse", rule="< baseline 3.5 (training mean)", value=model, passed=passed
    )


@pytest.mark.parametrize(
    ("strategy", "shown"),
    [
        ("most_frequent", "most frequent class"),
        ("prior", "most frequent class"),
        ("mean", "training mean"),
        ("median", "training median"),
        ("stratified", "stratified"),
    ],
)
def test_baseline_gate_names_the_dummy_strategy(strategy: str, shown: str) -> None:
    result = check_baseline("mae", {"mae": 1}, {"mae": 2}, strategy=strategy)
    assert result.rule == f"< baseline 2 ({shown})"
    assert result.value == 1.0 and result.passed


# --- the champion decision ----------------------------------------------------------------------


def _decision(
    promote: bool,
    reason: str,
    metric: str,
    challenger: float,
    champion: float | None,
    champion_version: int | None,
) -> Decision:
    return Decision(
        promote=promote,
        reason=reason,
        metric=metric,
        challenger=challenger,
        champion=champion,
        champion_version=champion_version,
    )


def test_no_champion_decision_carries_every_field() -> None:
    assert decide(0.8, None, metric="f1", min_improvement=0.05) == _decision(
        True, "no current champion", "f1", 0.8, None, None
    )
    assert decide(0.8, None, metric="f1", min_improvement=0.05, champion_version=4) == _decision(
        True, "champion v4 could not be scored", "f1", 0.8, None, 4
    )


def test_a_winning_challenger_says_by_how_much() -> None:
    decision = decide(0.85, 0.80, metric="f1", min_improvement=0.02, champion_version=3)
    assert decision == _decision(
        True,
        "f1 0.8500 beats champion v3 0.8000 by the required 0.02 (gain +0.0500)",
        "f1",
        0.85,
        0.80,
        3,
    )


def test_a_losing_challenger_says_by_how_much_it_fell_short() -> None:
    decision = decide(0.79, 0.80, metric="f1", min_improvement=0.0, champion_version=2)
    assert decision == _decision(
        False,
        "f1 0.7900 does not beat champion v2 0.8000 by the required 0 (gain -0.0100)",
        "f1",
        0.79,
        0.80,
        2,
    )


def test_for_a_loss_the_gain_is_how_much_lower_the_challenger_is() -> None:
    decision = decide(2.5, 3.0, metric="mae", min_improvement=0.5, champion_version=1)
    assert decision.promote
    assert decision.reason.endswith("by the required 0.5 (gain +0.5000)")
    assert not decide(2.6, 3.0, metric="mae", min_improvement=0.5, champion_version=1).promote


def test_a_gain_short_of_the_margin_by_float_noise_only_still_wins() -> None:
    margin = 0.5 + 1e-12  # the gain of 0.75 over 0.25 is exactly 0.5
    assert margin - 1e-12 == 0.5
    assert decide(0.75, 0.25, metric="f1", min_improvement=margin, champion_version=1).promote
    assert not decide(0.75, 0.25, metric="f1", min_improvement=0.5 + 1e-9).promote


def test_a_negative_margin_never_promotes_a_worse_challenger() -> None:
    assert not decide(0.79, 0.80, metric="f1", min_improvement=-0.5).promote
    assert not decide(0.80, 0.80, metric="f1", min_improvement=-0.5).promote
    assert decide(0.81, 0.80, metric="f1", min_improvement=-0.5).promote


def test_decision_to_json_is_plain_data() -> None:
    decision = decide(0.85, 0.80, metric="f1", min_improvement=0.02, champion_version=3)
    assert decision.to_json() == {
        "promote": True,
        "reason": decision.reason,
        "metric": "f1",
        "challenger": 0.85,
        "champion": 0.80,
        "champion_version": 3,
    }
