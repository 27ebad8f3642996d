"""Gate rules and the champion/challenger decision."""

from __future__ import annotations

import pytest

from conveyor.errors import ConfigError
from conveyor.evaluation.champion import decide
from conveyor.evaluation.gates import check_gates, parse_gates


@pytest.mark.parametrize(
    ("rule", "value", "passed"),
    [
        (">= 0.7", 0.7, True),
        ("> 0.7", 0.7, False),
        ("<= 0.3", 0.31, False),
        ("< 1e-2", 0.001, True),
        ("== 1", 1.0, True),
        (">=0.70", 0.69, False),
    ],
)
def test_rules(rule, value, passed):
    [result] = check_gates(parse_gates({"m": rule}), {"m": value})
    assert result.passed is passed
    assert result.metric == "m" and result.value == value


@pytest.mark.parametrize("rule", ["0.7", ">= high", "=> 0.7", ">= 0.7 and < 1", ""])
def test_malformed_rule_names_the_key(rule):
    with pytest.raises(ConfigError, match=r"evaluation\.gates\.f1: .* is not a gate"):
        parse_gates({"f1": rule})


def test_unknown_metric_lists_the_available_ones():
    with pytest.raises(ConfigError, match=r"evaluation\.gates\.auc: no such metric.*roc_auc"):
        check_gates(parse_gates({"auc": ">= 0.5"}), {"roc_auc": 0.8, "f1": 0.7})


def test_describe_says_what_was_needed():
    [result] = check_gates(parse_gates({"f1": ">= 0.9"}), {"f1": 0.8123})
    assert result.describe() == "f1 0.8123 (needs >= 0.9)"


def test_no_champion_promotes():
    decision = decide(0.8, None, metric="f1", min_improvement=0.0)
    assert decision.promote and decision.reason == "no current champion"


def test_unscorable_champion_promotes_and_says_so():
    decision = decide(0.8, None, metric="f1", min_improvement=0.0, champion_version=3)
    assert decision.promote and "v3 could not be scored" in decision.reason


@pytest.mark.parametrize(
    ("challenger", "champion", "margin", "promote"),
    [
        (0.81, 0.80, 0.0, True),
        (0.80, 0.80, 0.0, False),
        (0.81, 0.80, 0.02, False),
        (0.82, 0.80, 0.02, True),
        (0.79, 0.80, 0.0, False),
    ],
)
def test_higher_is_better_margin(challenger, champion, margin, promote):
    decision = decide(challenger, champion, metric="f1", min_improvement=margin, champion_version=1)
    assert decision.promote is promote
    assert ("beats" if promote else "does not beat") in decision.reason


def test_loss_metrics_want_lower_values():
    assert decide(0.9, 1.0, metric="rmse", min_improvement=0.0, champion_version=1).promote
    assert not decide(1.1, 1.0, metric="rmse", min_improvement=0.0, champion_version=1).promote
