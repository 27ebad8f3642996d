"""Shared by tests that train the visa example: the same line, shrunk to run in seconds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from pathlib import Path

TRIALS = 3


def shrink_visa_config(project: Path) -> None:
    """Keep every candidate and step of the shipped visa config, with small models and 3 trials.

    Fails loudly if the example stops looking like what this shrinks.
    """
    path = project / "conveyor.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    candidates = {c["name"]: c for c in config["training"]["candidates"]}
    assert set(candidates) == {"logreg", "hgb", "lightgbm"}, "visa example changed: update me"
    candidates["hgb"]["params"]["max_iter"] = 30
    candidates["lightgbm"]["params"]["n_estimators"] = 30
    config["training"]["tuning"].update(trials=TRIALS, workers=1)
    config["evaluation"]["importance"] = {"repeats": 2, "max_rows": 300}
    # On a few thousand rows the shrunk models' F1 is within noise of the baseline's (predict
    # "Certified" for everyone: F1 ~0.80), so the default baseline gate would decide these runs
    # by chance. The gate itself is tested in tests/e2e/test_any_table.py and by the demo.
    config["evaluation"]["beat_baseline"] = False
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
