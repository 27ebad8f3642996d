"""A plugin package whose entry points are wrong, for the registry's error messages."""

from __future__ import annotations

NOT_A_SOURCE = 42


def not_a_channel_factory() -> None:
    """Takes no config: calling it with one fails."""
