"""lifecycle: lifecycle changes in the feed (no data type or record id, longer action names) and
the backfill's progress on the connection

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FEED_TABLES = ('whoop_change_outbox', 'whoop_change')


def _feed_columns(nullable: bool, action: int, was: int) -> None:
    """Alter the feed's columns. SQLite rebuilds the table: `whoop_change` keeps AUTOINCREMENT
    and its place in `sqlite_sequence`, so that no change number is ever handed out twice."""
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for table in FEED_TABLES:
        kept = None
        if sqlite and table == 'whoop_change':
            kept = op.get_bind().execute(
                sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'whoop_change'")
            ).scalar()
        kwargs = {'sqlite_autoincrement': True} if table == 'whoop_change' else {}
        with op.batch_alter_table(table, table_kwargs=kwargs) as batch:
            batch.alter_column('data_type', existing_type=sa.String(16), nullable=nullable)
            batch.alter_column('record_id', existing_type=sa.String(64), nullable=nullable)
            batch.alter_column(
                'action', existing_type=sa.String(was), type_=sa.String(action), existing_nullable=False
            )
        if kept is not None:
            op.execute(
                sa.text(
                    "UPDATE sqlite_sequence SET seq = MAX(seq, :kept) WHERE name = 'whoop_change'"
                ).bindparams(kept=kept)
            )
            op.execute(
                sa.text(
                    "INSERT INTO sqlite_sequence (name, seq) SELECT 'whoop_change', :kept "
                    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'whoop_change')"
                ).bindparams(kept=kept)
            )


def upgrade() -> None:
    _feed_columns(nullable=True, action=40, was=16)
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
    _feed_columns(nullable=False, action=16, was=40)
