"""api key scopes: predict, read, admin; keys made before are predict keys, as they were used

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN with a server default fills every existing row (SQLite and PostgreSQL
    # alike) and never copies the table, which batch mode would (and fail once rows exist).
    op.add_column(
        "api_keys",
        sa.Column("scopes", sa.String(100), nullable=False, server_default="predict"),
    )


def downgrade() -> None:
    # SQLite >= 3.35 drops a column in place; nothing references api_keys, so no copy either.
    op.drop_column("api_keys", "scopes")
