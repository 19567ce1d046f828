"""accounts: an index for the open OAuth states of a user (the per-user cap)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 01:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        'ix_whoop_oauth_state_user_created',
        'whoop_oauth_state',
        ['user_id', 'created_at'],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index('ix_whoop_oauth_state_user_created', table_name='whoop_oauth_state')
