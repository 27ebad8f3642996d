"""`conveyor demo`: the visa example end to end, then again on the same folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.e2e.conftest import conveyor

pytestmark = pytest.mark.slow


def test_demo_then_demo_again(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    proc = conveyor("demo", folder, timeout=300)
    out = proc.stdout
    assert f"created {folder / 'conveyor.yaml'}" in out
    assert (folder / "data" / "visa.csv").is_file()
    assert "14/14 steps cached" in out
    assert "predicted" in out
    assert "model visa-approval:1" in out
    f1 = re.search(r"\bf1=([0-9.]+)", out)
    assert f1 is not None, out
    assert 0.5 <= float(f1.group(1)) <= 1.0
    assert str(folder.resolve()) in out
    assert "Traceback" not in proc.stderr

    # the folder holds a real project: two runs, the first trained, the second all cached
    runs = json.loads(conveyor("runs", "list", "-p", folder, "--json").stdout)
    assert [r["steps"] for r in runs] == [{"cached": 14}, {"succeeded": 14}]
    assert re.search(rf"conveyor runs show {runs[1]['run_id'][:8]}\b", out)

    again = conveyor("demo", folder, timeout=300)
    assert "created" not in again.stdout  # reuses the project
    assert "14/14 steps cached" in again.stdout
    assert "model visa-approval:1" in again.stdout  # nothing changed: no new version
    runs = json.loads(conveyor("runs", "list", "-p", folder, "--json").stdout)
    assert len(runs) == 4
    assert {r["status"] for r in runs} == {"succeeded"}
