"""console: WHOOP calls per hour by trigger, and the operators' incidents

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 00:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('whoop_call_hour',
    sa.Column('id', ID, nullable=False),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whoop_call_hour')),
    sa.UniqueConstraint('hour', 'trigger', name=op.f('uq_whoop_call_hour_hour_trigger'))
    )
    op.create_table('whoop_ops_incident',
    sa.Column('id', ID, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.String(length=64), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whoop_ops_incident'))
    )
    op.create_index('ix_whoop_ops_incident_kind_at', 'whoop_ops_incident', ['kind', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_whoop_ops_incident_kind_at', table_name='whoop_ops_incident')
    op.drop_table('whoop_ops_incident')
    op.drop_table('whoop_call_hour')
