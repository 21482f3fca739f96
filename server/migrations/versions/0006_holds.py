"""locks and holds: the support desk's hold on an account, new passkeys on hold

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 21:30:00
"""

from alembic import op
import sqlalchemy as sa
import server.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_at', server.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('hold_reason', sa.String(length=200), nullable=True))
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('login_hold_until', server.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('verified_hold_until', server.models.UTCDateTime(), nullable=True))
    with op.batch_alter_table('credentials', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hold_until', server.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('credentials', schema=None) as batch_op:
        batch_op.drop_column('hold_until')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('verified_hold_until')
        batch_op.drop_column('login_hold_until')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('hold_reason')
        batch_op.drop_column('held_at')
