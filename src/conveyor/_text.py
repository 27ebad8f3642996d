"""Short text for messages people read: lists cut to their first items, so no line of an error
or a report runs to kilobytes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["MAX_ITEMS", "fmt_seconds", "fmt_time", "short_list", "short_mapping"]

MAX_ITEMS = 5


def short_list(items: Iterable[Any], *, limit: int = MAX_ITEMS, quote: bool = True) -> str:
    """``'a', 'b', 'c' and 12 more``: the first ``limit`` items (repr'd when ``quote``)."""
    values = list(items)
    shown = ", ".join(repr(v) if quote else str(v) for v in values[:limit])
    rest = len(values) - limit
    return f"{shown} and {rest} more" if rest > 0 else shown or "(none)"


def short_mapping(mapping: Mapping[Any, Any], *, limit: int = MAX_ITEMS) -> str:
    """``'a': 3, 'b': 1 and 40 more``: the first ``limit`` pairs."""
    pairs = [f"{k!r}: {v!r}" for k, v in mapping.items()]
    return short_list(pairs, limit=limit, quote=False)


def fmt_seconds(seconds: float | None) -> str:
    """``0.012`` -> ``12 ms``, ``3.4`` -> ``3.40 s``, None -> ``-``."""
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_time(ts: float | None) -> str:
    """A unix time as local ``YYYY-MM-DD HH:MM:SS``."""
    if ts is None:
        return "-"
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
