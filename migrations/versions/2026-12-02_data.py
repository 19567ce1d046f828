"""tombstones of deleted records; indexes for retention

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table: (key column, its type); columns are built per run, a Column belongs to one table only.
_TOMBSTONES = {
    'whoop_cycle_tombstone': ('id', sa.BigInteger),
    'whoop_sleep_tombstone': ('id', sa.Uuid),
    'whoop_workout_tombstone': ('id', sa.Uuid),
    'whoop_recovery_tombstone': ('sleep_id', sa.Uuid),
}


def upgrade() -> None:
    for table, (key, type_) in _TOMBSTONES.items():
        op.create_table(
            table,
            sa.Column(key, type_(), autoincrement=False, nullable=False),
            sa.Column('user_id', sa.Uuid(), nullable=False),
            sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint(key, name=op.f(f'pk_{table}')),
        )
        op.create_index(f'ix_{table}_deleted_at', table, ['deleted_at'], unique=False)
    op.create_index(
        'ix_whoop_sync_attempt_started_at', 'whoop_sync_attempt', ['started_at'], unique=False
    )
    op.create_index(
        op.f('ix_whoop_oauth_state_expires_at'), 'whoop_oauth_state', ['expires_at'], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_whoop_oauth_state_expires_at'), table_name='whoop_oauth_state')
    op.drop_index('ix_whoop_sync_attempt_started_at', table_name='whoop_sync_attempt')
    for table in reversed(list(_TOMBSTONES)):
        op.drop_index(f'ix_{table}_deleted_at', table_name=table)
        op.drop_table(table)
