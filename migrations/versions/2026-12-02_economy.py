"""economy: webhook channel state, last fetch, pending backfills

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "status IN ('pending', 'failed')"


def upgrade() -> None:
    op.create_table('whoop_channel_state',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_refused_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('suspended_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('audit_cursor', sa.Uuid(), nullable=True),
    sa.Column('audit_wide', sa.Boolean(), nullable=False),
    sa.Column('audit_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whoop_channel_state'))
    )
    with op.batch_alter_table('whoop_sync_log') as batch:
        batch.add_column(sa.Column('last_fetch_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('whoop_connection') as batch:
        batch.add_column(
            sa.Column('backfill_pending_since', sa.DateTime(timezone=True), nullable=True)
        )
    op.create_index('ix_whoop_webhook_event_received_at', 'whoop_webhook_event', ['received_at'], unique=False)
    op.create_index(
        'ix_whoop_webhook_event_user_open', 'whoop_webhook_event', ['whoop_user_id'], unique=False,
        postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN),
    )


def downgrade() -> None:
    op.drop_index('ix_whoop_webhook_event_user_open', table_name='whoop_webhook_event')
    op.drop_index('ix_whoop_webhook_event_received_at', table_name='whoop_webhook_event')
    with op.batch_alter_table('whoop_connection') as batch:
        batch.drop_column('backfill_pending_since')
    with op.batch_alter_table('whoop_sync_log') as batch:
        batch.drop_column('last_fetch_at')
    op.drop_table('whoop_channel_state')
