"""automatic passkey upgrade: a ceremony issued as a conditional create; a passkey's uvInitialized

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 22:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every passkey registered before this revision was registered with UV required.
    with op.batch_alter_table('credentials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uv_initialized', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('ceremonies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('conditional', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('ceremonies', schema=None) as batch_op:
        batch_op.drop_column('conditional')
    with op.batch_alter_table('credentials', schema=None) as batch_op:
        batch_op.drop_column('uv_initialized')
