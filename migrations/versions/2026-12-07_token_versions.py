"""token versions: 64-bit, so that a connection row inserted again starts above every version
its user's tokens ever had (it starts from the clock)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('whoop_connection') as batch:
        batch.alter_column(
            'token_version', existing_type=sa.Integer(), type_=sa.BigInteger(), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table('whoop_connection') as batch:
        batch.alter_column(
            'token_version', existing_type=sa.BigInteger(), type_=sa.Integer(), nullable=False
        )
