"""Plugin packages for the tests, put on ``sys.path`` as if installed (no pip install).

``_demo_plugin/`` holds a working third-party package (a ``jsonl`` source, a ``file`` alert
channel, a ``fraction`` serializer); ``_broken_plugin/`` one whose entry points fail.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conveyor import _plugins

if TYPE_CHECKING:
    from collections.abc import Iterator

DEMO = Path(__file__).parent / "_demo_plugin"
BROKEN = Path(__file__).parent / "_broken_plugin"


def _installed(folder: Path) -> Iterator[Path]:
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    _plugins.refresh()
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        importlib.invalidate_caches()
        _plugins.refresh()


@pytest.fixture
def demo_plugin() -> Iterator[Path]:
    """The demo plugin package, importable and discoverable for the test's duration."""
    yield from _installed(DEMO)


@pytest.fixture
def broken_plugin() -> Iterator[Path]:
    """The broken plugin package, importable and discoverable for the test's duration."""
    yield from _installed(BROKEN)


@pytest.fixture
def no_plugins() -> Iterator[None]:
    """Forgotten entry points before and after: the test sees what discovery does."""
    _plugins.refresh()
    yield
    _plugins.refresh()
