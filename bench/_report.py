"""What every benchmark prints: one aligned table of measure | value | goal | ok?."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


@dataclass
class Row:
    """One line of the report; goal and ok are ``-`` for a measure given for information."""

    measure: str
    value: str
    goal: str = "-"
    ok: str = "-"


def print_table(rows: Sequence[Row]) -> None:
    header = Row("measure", "value", "goal", "ok?")
    cols = list(zip(*[(r.measure, r.value, r.goal, r.ok) for r in (header, *rows)], strict=True))
    widths = [max(len(c) for c in col) for col in cols]

    def line(r: Row) -> str:
        cells = (r.measure, r.value, r.goal, r.ok)
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    print(line(header))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def section(name: str, goal: str, fn: Callable[[], list[Row]]) -> list[Row]:
    """Run one benchmark; an error becomes a FAIL row (the traceback goes to stderr)."""
    try:
        return fn()
    except Exception as exc:
        traceback.print_exc()
        return [Row(name, f"error: {type(exc).__name__}", goal, "FAIL")]


def check(seconds: float, goal: float) -> str:
    """``ok`` when a time meets its goal, else ``FAIL``."""
    return "ok" if seconds <= goal else "FAIL"


def fmt(seconds: float) -> str:
    """Seconds as ``45 us`` below a millisecond, ``12.3 ms`` below a second, else ``1.23 s``."""
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
