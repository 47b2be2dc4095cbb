"""Authentication per SAP service: installations configured before keep what they used.

`Auth Method` had the default `oauth` for every service. It now has none: the posting service
defaults to `basic` (its WSDL policy offers Basic or a client certificate, not OAuth) and the
read services to `oauth`. An installation that already talks to SAP (a Client ID is stored)
without having set `Auth Method` gets `oauth` written explicitly, so it keeps using OAuth for
both until an operator chooses per service; the change is in the settings' audit trail.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PREFIX = "SAP Integration - "
_ENTRIES = sa.table(
    "config_entries",
    sa.column("key", sa.String),
    sa.column("value", sa.Text),
    sa.column("is_secret", sa.Boolean),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("updated_by", sa.String),
)
_AUDIT = sa.table(
    "config_audit",
    sa.column("key", sa.String),
    sa.column("old_value", sa.Text),
    sa.column("new_value", sa.Text),
    sa.column("actor", sa.String),
    sa.column("request_id", sa.String),
    sa.column("changed_at", sa.DateTime(timezone=True)),
)
_ACTOR = "migration 0009"


def upgrade() -> None:
    bind = op.get_bind()
    keys = set(bind.execute(sa.select(_ENTRIES.c.key)).scalars())
    if _PREFIX + "Client ID" not in keys or _PREFIX + "Auth Method" in keys:
        return
    now = datetime.now(UTC)
    key = _PREFIX + "Auth Method"
    op.bulk_insert(
        _ENTRIES,
        [
            {
                "key": key,
                "value": "oauth",
                "is_secret": False,
                "updated_at": now,
                "updated_by": _ACTOR,
            }
        ],
    )
    op.bulk_insert(
        _AUDIT,
        [
            {
                "key": key,
                "old_value": None,
                "new_value": "oauth",
                "actor": _ACTOR,
                "request_id": None,
                "changed_at": now,
            }
        ],
    )


def downgrade() -> None:
    op.execute(
        _ENTRIES.delete().where(
            _ENTRIES.c.key == _PREFIX + "Auth Method", _ENTRIES.c.updated_by == _ACTOR
        )
    )
