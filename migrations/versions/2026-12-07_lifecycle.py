"""lifecycle: lifecycle changes in the feed (no data type or record id, longer action names) and
the backfill's progress on the connection

Revision ID: lifecycle
Revises: feed
Create Date: 2026-12-07 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'lifecycle'
down_revision: str | None = 'feed'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FEED_TABLES = ('whoop_change_outbox', 'whoop_change')


def upgrade() -> None:
    for table in FEED_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column('data_type', existing_type=sa.String(16), nullable=True)
            batch.alter_column('record_id', existing_type=sa.String(64), nullable=True)
            batch.alter_column(
                'action', existing_type=sa.String(16), type_=sa.String(40), existing_nullable=False
            )
    with op.batch_alter_table('whoop_connection') as batch:
        batch.add_column(
            sa.Column('backfill_status', sa.String(16), nullable=False, server_default='pending')
        )
        batch.add_column(sa.Column('backfill_days', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('backfill_started_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('backfill_finished_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('backfill_error', sa.Text(), nullable=True))
        batch.add_column(sa.Column('backfill_progress', sa.Text(), nullable=True))
    # A connection whose backfill already finished says so.
    op.execute(
        "UPDATE whoop_connection SET backfill_status = 'done' WHERE backfill_pending_since IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table('whoop_connection') as batch:
        for column in (
            'backfill_progress',
            'backfill_error',
            'backfill_finished_at',
            'backfill_started_at',
            'backfill_days',
            'backfill_status',
        ):
            batch.drop_column(column)
    op.execute("DELETE FROM whoop_change_outbox WHERE data_type IS NULL")
    op.execute("DELETE FROM whoop_change WHERE data_type IS NULL")
    for table in FEED_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                'action', existing_type=sa.String(40), type_=sa.String(16), existing_nullable=False
            )
            batch.alter_column('record_id', existing_type=sa.String(64), nullable=False)
            batch.alter_column('data_type', existing_type=sa.String(16), nullable=False)
