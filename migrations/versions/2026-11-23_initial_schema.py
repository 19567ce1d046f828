"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 22:42:32.788937
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('whoop_connection',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('whoop_user_id', sa.BigInteger(), nullable=False),
    sa.Column('access_token_enc', sa.Text(), nullable=True),
    sa.Column('refresh_token_enc', sa.Text(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('token_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_whoop_connection')),
    sa.UniqueConstraint('whoop_user_id', name=op.f('uq_whoop_connection_whoop_user_id'))
    )
    op.create_index(op.f('ix_whoop_connection_status'), 'whoop_connection', ['status'], unique=False)
    op.create_table('whoop_cycle',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('whoop_user_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('score_state', sa.String(length=16), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whoop_cycle'))
    )
    op.create_index('ix_whoop_cycle_user_start', 'whoop_cycle', ['user_id', 'start'], unique=False)
    op.create_table('whoop_oauth_state',
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('state', name=op.f('pk_whoop_oauth_state'))
    )
    op.create_table('whoop_recovery',
    sa.Column('cycle_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('sleep_id', sa.Uuid(), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('whoop_user_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('score_state', sa.String(length=16), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('cycle_id', name=op.f('pk_whoop_recovery')),
    sa.UniqueConstraint('sleep_id', name=op.f('uq_whoop_recovery_sleep_id'))
    )
    op.create_index('ix_whoop_recovery_user_created', 'whoop_recovery', ['user_id', 'created_at'], unique=False)
    op.create_table('whoop_sleep',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('cycle_id', sa.BigInteger(), nullable=False),
    sa.Column('nap', sa.Boolean(), nullable=False),
    sa.Column('start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('whoop_user_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('score_state', sa.String(length=16), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whoop_sleep'))
    )
    op.create_index(op.f('ix_whoop_sleep_cycle_id'), 'whoop_sleep', ['cycle_id'], unique=False)
    op.create_index('ix_whoop_sleep_user_start', 'whoop_sleep', ['user_id', 'start'], unique=False)
    op.create_table('whoop_sync_attempt',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('data_type', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whoop_sync_attempt'))
    )
    op.create_index('ix_whoop_sync_attempt_user_type_started', 'whoop_sync_attempt', ['user_id', 'data_type', 'started_at'], unique=False)
    op.create_table('whoop_sync_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('data_type', sa.String(length=16), nullable=False),
    sa.Column('last_sync_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sync_status', sa.String(length=32), nullable=False),
    sa.Column('records_synced', sa.Integer(), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whoop_sync_log')),
    sa.UniqueConstraint('user_id', 'data_type', name=op.f('uq_whoop_sync_log_user_id_data_type'))
    )
    op.create_table('whoop_webhook_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('trace_id', sa.String(length=128), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('whoop_user_id', sa.BigInteger(), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whoop_webhook_event')),
    sa.UniqueConstraint('trace_id', name=op.f('uq_whoop_webhook_event_trace_id'))
    )
    op.create_index('ix_whoop_webhook_event_status_received', 'whoop_webhook_event', ['status', 'received_at'], unique=False)
    op.create_table('whoop_workout',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('sport_name', sa.String(length=64), nullable=True),
    sa.Column('start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('whoop_user_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('score_state', sa.String(length=16), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whoop_workout'))
    )
    op.create_index('ix_whoop_workout_user_start', 'whoop_workout', ['user_id', 'start'], unique=False)



def downgrade() -> None:

    op.drop_index('ix_whoop_workout_user_start', table_name='whoop_workout')
    op.drop_table('whoop_workout')
    op.drop_index('ix_whoop_webhook_event_status_received', table_name='whoop_webhook_event')
    op.drop_table('whoop_webhook_event')
    op.drop_table('whoop_sync_log')
    op.drop_index('ix_whoop_sync_attempt_user_type_started', table_name='whoop_sync_attempt')
    op.drop_table('whoop_sync_attempt')
    op.drop_index('ix_whoop_sleep_user_start', table_name='whoop_sleep')
    op.drop_index(op.f('ix_whoop_sleep_cycle_id'), table_name='whoop_sleep')
    op.drop_table('whoop_sleep')
    op.drop_index('ix_whoop_recovery_user_created', table_name='whoop_recovery')
    op.drop_table('whoop_recovery')
    op.drop_table('whoop_oauth_state')
    op.drop_index('ix_whoop_cycle_user_start', table_name='whoop_cycle')
    op.drop_table('whoop_cycle')
    op.drop_index(op.f('ix_whoop_connection_status'), table_name='whoop_connection')
    op.drop_table('whoop_connection')

