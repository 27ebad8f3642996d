"""What a project records about itself: run parameters without secrets (hardening finding 9)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.config import load_config
from conveyor.project import Project

if TYPE_CHECKING:
    from pathlib import Path

CONFIG = """\
project: p
data:
  source:
    type: sql
    url: postgresql://etl:hunter2-literal@db.internal:5432/visa?sslmode=require&token=abc123
    table: cases
  target: y
training:
  candidates: [{name: a, estimator: sklearn.dummy.DummyClassifier}]
registry: {model: m}
monitoring:
  alerts:
    - {type: slack, url: "https://hooks.slack.com/services/T000/B000/XXXXSECRET"}
    - {type: webhook, url: "${ALERT_URL}"}
"""


def test_secrets_written_in_conveyor_yaml_are_masked_in_run_params(tmp_path: Path) -> None:
    """Hardening finding 9: a password in a SQL URL, a token in a query string and a Slack
    webhook URL were stored in run params and printed by `runs show --json`."""
    (tmp_path / "conveyor.yaml").write_text(CONFIG, encoding="utf-8")
    project = Project(tmp_path, load_config(tmp_path))
    params = project.run_params()
    text = repr(params)
    for secret in ("hunter2-literal", "abc123", "XXXXSECRET", "T000"):
        assert secret not in text
    assert params["data.source.url"] == (
        "postgresql://etl:***@db.internal:5432/visa?sslmode=require&token=***"
    )
    alerts = params["monitoring.alerts"]
    assert alerts[0]["url"] == "https://hooks.slack.com/..."
    assert alerts[1]["url"] == "${ALERT_URL}"  # a reference names a secret, it holds none
    # The config hash still sees the real values (a changed password is a changed config).
    other = CONFIG.replace("hunter2-literal", "other")
    (tmp_path / "conveyor.yaml").write_text(other, encoding="utf-8")
    assert Project(tmp_path, load_config(tmp_path)).config_hash() != project.config_hash()
