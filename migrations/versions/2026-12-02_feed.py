"""change feed: outbox, numbered changes, retention horizon, app deliveries and their attempts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:48:37.611585
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('whoop_app_delivery',
    sa.Column('change_seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('change_seq', name=op.f('pk_whoop_app_delivery'))
    )
    op.create_index('ix_whoop_app_delivery_status_next', 'whoop_app_delivery', ['status', 'next_attempt_at'], unique=False)
    op.create_index('ix_whoop_app_delivery_user_status_seq', 'whoop_app_delivery', ['user_id', 'status', 'change_seq'], unique=False)
    op.create_table('whoop_app_delivery_attempt',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('change_seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('response_code', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whoop_app_delivery_attempt'))
    )
    op.create_index('ix_whoop_app_delivery_attempt_seq', 'whoop_app_delivery_attempt', ['change_seq'], unique=False)
    op.create_table('whoop_change',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('whoop_user_id', sa.BigInteger(), nullable=False),
    sa.Column('data_type', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('data', sa.Text(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_whoop_change')),
    sqlite_autoincrement=True
    )
    op.create_index('ix_whoop_change_changed_at', 'whoop_change', ['changed_at'], unique=False)
    op.create_index('ix_whoop_change_user_seq', 'whoop_change', ['user_id', 'seq'], unique=False)
    op.create_table('whoop_change_horizon',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('pruned_through', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whoop_change_horizon'))
    )
    horizon = sa.table('whoop_change_horizon', sa.column('id', sa.Integer()), sa.column('pruned_through', sa.BigInteger()))
    op.bulk_insert(horizon, [{'id': 1, 'pruned_through': 0}])
    op.create_table('whoop_change_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('whoop_user_id', sa.BigInteger(), nullable=False),
    sa.Column('data_type', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('data', sa.Text(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whoop_change_outbox'))
    )


def downgrade() -> None:
    op.drop_table('whoop_change_outbox')
    op.drop_table('whoop_change_horizon')
    op.drop_index('ix_whoop_change_user_seq', table_name='whoop_change')
    op.drop_index('ix_whoop_change_changed_at', table_name='whoop_change')
    op.drop_table('whoop_change')
    op.drop_index('ix_whoop_app_delivery_attempt_seq', table_name='whoop_app_delivery_attempt')
    op.drop_table('whoop_app_delivery_attempt')
    op.drop_index('ix_whoop_app_delivery_user_status_seq', table_name='whoop_app_delivery')
    op.drop_index('ix_whoop_app_delivery_status_next', table_name='whoop_app_delivery')
    op.drop_table('whoop_app_delivery')
