"""how a session was verified

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 21:42:58.735470
"""

from alembic import op
import sqlalchemy as sa
import server.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verified_by', sa.String(length=20), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('verified_by')

