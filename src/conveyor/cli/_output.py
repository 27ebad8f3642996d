"""Shared CLI plumbing: consoles, JSON output, and turning conveyor errors into exit codes."""

from __future__ import annotations

import io
import json
import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from conveyor._text import fmt_seconds as fmt_seconds  # re-exported for the commands
from conveyor._text import fmt_time as fmt_time

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from rich.console import Console

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
LOG_WIDTH = 400
"""Columns of output that is not a terminal (CI logs, ``> file``): wide enough that tables keep
their natural width, so no identifier, path or number is broken across lines."""


def console(*, stderr: bool = False) -> Console:
    """A rich console (stderr for progress, so stdout stays clean for ``--json``).

    On a terminal, rich wraps to the terminal's width. Anywhere else (a CI log, a file, a pipe)
    lines are never wrapped and tables take the width they need, unless ``COLUMNS`` says
    otherwise: a user grepping a log for a column name finds it whole.
    """
    import os

    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(stderr=stderr, highlight=False, width=LOG_WIDTH, soft_wrap=True)
    return out


@contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """While the block runs, what native code and child processes write to file descriptor 1
    goes to stderr; conveyor's own output (``sys.stdout``) still reaches stdout.

    LightGBM prints its network setup from C++ on every Dask worker (``[LightGBM] [Info]
    Trying to bind port...``), and workers of a local cluster inherit our stdout: without
    this, ``--json`` output would not parse. Nothing changes when stdout is not a real file
    (a test runner's capture buffer).
    """
    try:
        real = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        yield
        return
    if real != 1:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    original = sys.stdout
    sys.stdout = open(saved, "w", encoding=original.encoding, closefd=False)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        sys.stdout.close()
        sys.stdout = original
        os.close(saved)


def print_json(data: Any) -> None:
    """Write ``data`` as JSON to stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def conveyor_errors() -> Iterator[None]:
    """Show a conveyor error as one readable message and exit 1 (no traceback)."""
    from rich.markup import escape

    from conveyor.errors import ConveyorError

    try:
        yield
    except ConveyorError as exc:
        console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(EXIT_FAILURE) from None


def write_report(root: Path, filename: str, html: bytes) -> Path:
    """Write an HTML report under ``root/.conveyor/reports/`` for people to open (the stored
    artifact stays the record)."""
    path = root / ".conveyor" / "reports" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(html)
    return path


STATUS_STYLE = {
    "succeeded": "green",
    "cached": "cyan",
    "failed": "bold red",
    "skipped": "yellow",
    "running": "blue",
    "pending": "dim",
    "interrupted": "magenta",
    "gated": "yellow",
    "approved": "green",
    "rejected": "red",
    "candidate": "yellow",
    "archived": "dim",
}


def styled(status: str) -> str:
    """A status word with its colour, as rich markup."""
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"
