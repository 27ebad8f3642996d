"""Fails on import, as a plugin with a missing dependency does."""

from __future__ import annotations

raise ImportError("No module named 'pagerduty_sdk'")
