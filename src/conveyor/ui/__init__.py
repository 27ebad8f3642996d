"""`conveyor ui`: the whole loop in a browser, read from the project's stores.

Server-rendered pages (Jinja2 templates, SVG drawn on the server), one small script served from
this package, nothing loaded from another origin (a Content-Security-Policy enforces it). Every
page needs an API key with the ``read`` scope, every action ``admin``; actions go through the same
governance code as the CLI and write the same audit events.
"""

from __future__ import annotations

from conveyor.ui.app import create_app

__all__ = ["create_app"]
