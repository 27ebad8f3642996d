"""artifact kinds up to 100 characters: contract kinds (contract:registration) and plugin
serializer names are longer than the 20 the first schema allowed

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _resize(20, 100)


def downgrade() -> None:
    _resize(100, 20)


def _resize(old: int, new: int) -> None:
    # SQLite never enforces a VARCHAR length, and its batch mode would copy and DROP the table,
    # which fails once other tables reference its rows (foreign keys are on): only real
    # databases need the change.
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column("artifacts", "kind", existing_type=sa.String(old), type_=sa.String(new))
