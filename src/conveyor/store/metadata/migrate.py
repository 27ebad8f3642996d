"""Bring a metadata database to the newest schema with Alembic (skipped when already there)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

if TYPE_CHECKING:
    from sqlalchemy import Connection

HEAD = "0007"  # the newest revision in migrations/versions; bump with every new migration
_SCRIPTS = Path(__file__).parent / "migrations"


def current_revision(conn: Connection) -> str | None:
    """The Alembic revision the database is at, or None for an empty database."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def upgrade(conn: Connection) -> None:
    """Run every pending migration on ``conn`` (Alembic is imported only when needed)."""
    if current_revision(conn) == HEAD:
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
