"""Bills keep the journal entry as sent, so a reversal mirrors what posted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bills", sa.Column("posted_entry", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("bills", "posted_entry")
