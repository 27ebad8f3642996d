"""Short text for messages people read: lists cut to their first items, so no line of an error
or a report runs to kilobytes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["MAX_ITEMS", "short_list", "short_mapping"]

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
