"""The flagship "visa" example: a seeded generator modelled on the public EasyVisa table."""

from __future__ import annotations

from conveyor.examples.visa.generate import generate

__all__ = ["generate"]
