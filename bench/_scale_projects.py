"""The bench projects of scale.py: a visa project folder for a source, and what its SQLite
metadata store says of a run's steps (read-only, with ``sqlite3``)."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path
from typing import Any


def make_project(
    folder: Path,
    *,
    source: Path,
    partitioned: bool,
    executor: dict[str, Any],
    candidate: dict[str, Any],
) -> Path:
    """A copy of the visa example's conveyor.yaml and schema.yaml reading ``source``, with one
    candidate, no tuning, and the store in ``folder/.conveyor`` (absolute, so workers find it)."""
    from conveyor import _yaml
    from conveyor.examples import visa

    example = Path(visa.__file__).parent
    config = _yaml.load((example / "conveyor.yaml").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(example / "schema.yaml", folder / "schema.yaml")
    store = folder / ".conveyor"
    config["project"] = "visa-scale"
    config["store"] = {
        "metadata": f"sqlite:///{store / 'conveyor.db'}",
        "artifacts": str(store / "artifacts"),
    }
    config["executor"] = executor
    config["data"]["source"] = {"type": "parquet", "path": str(source)}
    if partitioned:
        config["data"]["partitioned"] = True
    config["training"] = {"task": "classification", "candidates": [candidate]}
    config["registry"]["model"] = "visa-scale"
    (folder / "conveyor.yaml").write_text(_yaml.dump(config))
    return folder


def last_run_steps(proj: Path) -> list[tuple[str, str]]:
    """(step, status) of the newest run in the project's SQLite store."""
    db = proj / ".conveyor" / "conveyor.db"
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        rows = con.execute(
            "SELECT s.name, s.status FROM steps s WHERE s.run_id = "
            "(SELECT id FROM runs ORDER BY started_at DESC LIMIT 1) ORDER BY s.position"
        ).fetchall()
    return [(str(n), str(st)) for n, st in rows]


def step_windows(proj: Path, run_id: str) -> list[tuple[str, float, float]]:
    """(step, started_at, ended_at) of a run, read from the project's SQLite metadata store."""
    db = proj / ".conveyor" / "conveyor.db"
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        rows = con.execute(
            "SELECT name, started_at, ended_at FROM steps WHERE run_id = ? "
            "AND started_at IS NOT NULL AND ended_at IS NOT NULL ORDER BY position",
            (run_id,),
        ).fetchall()
    return [(str(n), float(a), float(e)) for n, a, e in rows]
