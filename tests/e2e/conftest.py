"""End-to-end fixtures: drive the installed ``conveyor`` command as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._processes import die_with_parent

CONVEYOR = Path(sys.executable).parent / "conveyor"
SMALL_ROWS = 2000

# Environment variables that would point the CLI somewhere other than the project under test.
_LEAKY_ENV = ("CONVEYOR_PROJECT", "CONVEYOR_METADATA_URL", "CONVEYOR_ARTIFACTS_URI")
RUNNER_ENV: dict[str, str | None] = {
    "COLUMNS": "200",
    "NO_COLOR": "1",
    "TERM": "dumb",
    **dict.fromkeys(_LEAKY_ENV),
}
"""For Typer's ``CliRunner(env=...)``: wide, colourless output; nothing from the caller's shell
pointing at another project or store (None unsets a variable)."""


def cli_env() -> dict[str, str]:
    """A predictable environment: wide, colourless, non-interactive output."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", "PYTHONUNBUFFERED": "1"})
    env.setdefault("OMP_NUM_THREADS", "1")  # small fits; no thread oversubscription under load
    return env


def conveyor(
    *args: str | Path,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``conveyor ARGS`` in a subprocess; with ``check``, a non-zero exit fails the test.

    ``env`` adds variables to the (cleaned) environment.
    """
    proc = subprocess.run(
        [str(CONVEYOR), *map(str, args)],
        cwd=cwd,
        env={**cli_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=die_with_parent,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"conveyor {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def spawn_conveyor(*args: str | Path, **popen: Any) -> subprocess.Popen[Any]:
    """Start ``conveyor ARGS`` in the background (``popen``: Popen's keyword arguments), in the
    predictable environment, killed by the kernel if the test process dies first."""
    return subprocess.Popen(
        [str(CONVEYOR), *map(str, args)], env=cli_env(), preexec_fn=die_with_parent, **popen
    )


def conveyor_json(*args: str | Path, cwd: Path | None = None, check: bool = True) -> Any:
    """Run ``conveyor ARGS --json`` and parse stdout."""
    proc = conveyor(*args, "--json", cwd=cwd, check=check)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not JSON:\n{proc.stdout}\n--- stderr\n{proc.stderr}")


def make_visa_project(directory: Path, *, n_rows: int = SMALL_ROWS) -> Path:
    """``conveyor init DIR --example visa``, then shrink it: ``n_rows`` rows, small models."""
    from conveyor.examples.visa.generate import write_csv
    from tests._visa import shrink_visa_config

    conveyor("init", directory, "--example", "visa")
    write_csv(directory / "data" / "visa.csv", n_rows=n_rows)
    shrink_visa_config(directory)
    return directory


def steps_by_name(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``steps`` list of a run's ``--json`` output, keyed by step name."""
    return {s["name"]: s for s in summary["steps"]}


@pytest.fixture
def visa_project(tmp_path: Path) -> Path:
    """An initialised visa project with a small (2,000-row) CSV, not yet run."""
    return make_visa_project(tmp_path / "visa")
