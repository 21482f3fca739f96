"""passkeys and ceremonies

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 21:31:42.837966
"""

from alembic import op
import sqlalchemy as sa
import server.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('credentials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('credential_id', sa.LargeBinary(length=1023), nullable=False),
    sa.Column('public_key', sa.LargeBinary(), nullable=False),
    sa.Column('algorithm', sa.Integer(), nullable=False),
    sa.Column('sign_count', sa.BigInteger(), nullable=False),
    sa.Column('aaguid', sa.String(length=36), nullable=False),
    sa.Column('transports', sa.String(length=100), nullable=False),
    sa.Column('backup_eligible', sa.Boolean(), nullable=False),
    sa.Column('backup_state', sa.Boolean(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', server.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', server.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('credential_id')
    )
    with op.batch_alter_table('credentials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credentials_user_id'), ['user_id'], unique=False)

    op.create_table('ceremonies',
    sa.Column('challenge_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('session_id_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('challenge', sa.LargeBinary(length=64), nullable=False),
    sa.Column('expires_at', server.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['session_id_hash'], ['sessions.id_hash'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('challenge_hash')
    )
    with op.batch_alter_table('ceremonies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ceremonies_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ceremonies_session_id_hash'), ['session_id_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_ceremonies_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ceremonies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ceremonies_user_id'))
        batch_op.drop_index(batch_op.f('ix_ceremonies_session_id_hash'))
        batch_op.drop_index(batch_op.f('ix_ceremonies_expires_at'))

    op.drop_table('ceremonies')
    with op.batch_alter_table('credentials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credentials_user_id'))

    op.drop_table('credentials')
