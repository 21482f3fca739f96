"""the staff console: staff, their passkeys, ceremonies and sessions; two-person requests; the audit log

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 21:50:20.490682
"""

from alembic import op
import sqlalchemy as sa
import server.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


# The audit log is append-only: no staff member, and no bug, changes or removes an entry.
_NO_CHANGE = {
    "postgresql": [
        """CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$""",
        """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
           FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
    ],
    "sqlite": [
        """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    ],
}
_DROP = {
    "postgresql": ["DROP TRIGGER audit_log_append_only ON audit_log", "DROP FUNCTION audit_log_append_only()"],
    "sqlite": ["DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"],
}


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', server.models.UTCDateTime(), nullable=False),
    sa.Column('staff', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('customer_code', sa.String(length=20), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_customer_code'), ['customer_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_staff'), ['staff'], unique=False)
    for statement in _NO_CHANGE[op.get_bind().dialect.name]:
        op.execute(statement)

    op.create_table('staff',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('user_handle', sa.LargeBinary(length=32), nullable=False),
    sa.Column('created_at', server.models.UTCDateTime(), nullable=False),
    sa.Column('disabled_at', server.models.UTCDateTime(), nullable=True),
    sa.Column('enrolment_hash', sa.String(length=64), nullable=True),
    sa.Column('enrolment_expires_at', server.models.UTCDateTime(), nullable=True),
    sa.Column('code_issued_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['code_issued_by'], ['staff.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    sa.UniqueConstraint('user_handle')
    )
    op.create_table('staff_ceremonies',
    sa.Column('challenge_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('browser_hash', sa.String(length=64), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('challenge', sa.LargeBinary(length=64), nullable=False),
    sa.Column('expires_at', server.models.UTCDateTime(), nullable=False),
    sa.Column('enrolment_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('challenge_hash')
    )
    with op.batch_alter_table('staff_ceremonies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_ceremonies_browser_hash'), ['browser_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_ceremonies_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_ceremonies_staff_id'), ['staff_id'], unique=False)

    op.create_table('staff_credentials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('credential_id', sa.LargeBinary(length=1023), nullable=False),
    sa.Column('public_key', sa.LargeBinary(), nullable=False),
    sa.Column('sign_count', sa.BigInteger(), nullable=False),
    sa.Column('aaguid', sa.String(length=36), nullable=False),
    sa.Column('backup_eligible', sa.Boolean(), nullable=False),
    sa.Column('backup_state', sa.Boolean(), nullable=False),
    sa.Column('created_at', server.models.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', server.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('credential_id')
    )
    with op.batch_alter_table('staff_credentials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_credentials_staff_id'), ['staff_id'], unique=False)

    op.create_table('staff_requests',
    sa.Column('id', sa.String(length=22), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=False),
    sa.Column('requested_at', server.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', server.models.UTCDateTime(), nullable=False),
    sa.Column('approved_by', sa.Integer(), nullable=True),
    sa.Column('done_at', server.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['approved_by'], ['staff.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['requested_by'], ['staff.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('staff_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_requests_approved_by'), ['approved_by'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_requests_done_at'), ['done_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_requests_requested_by'), ['requested_by'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_requests_user_id'), ['user_id'], unique=False)

    op.create_table('staff_sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('created_at', server.models.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', server.models.UTCDateTime(), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id_hash')
    )
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_sessions_staff_id'), ['staff_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('staff_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_sessions_staff_id'))

    op.drop_table('staff_sessions')
    with op.batch_alter_table('staff_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_requests_user_id'))
        batch_op.drop_index(batch_op.f('ix_staff_requests_requested_by'))
        batch_op.drop_index(batch_op.f('ix_staff_requests_done_at'))
        batch_op.drop_index(batch_op.f('ix_staff_requests_approved_by'))

    op.drop_table('staff_requests')
    with op.batch_alter_table('staff_credentials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_credentials_staff_id'))

    op.drop_table('staff_credentials')
    with op.batch_alter_table('staff_ceremonies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_ceremonies_staff_id'))
        batch_op.drop_index(batch_op.f('ix_staff_ceremonies_expires_at'))
        batch_op.drop_index(batch_op.f('ix_staff_ceremonies_browser_hash'))

    op.drop_table('staff_ceremonies')
    op.drop_table('staff')
    for statement in _DROP[op.get_bind().dialect.name]:
        op.execute(statement)
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_staff'))
        batch_op.drop_index(batch_op.f('ix_audit_log_customer_code'))
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))

    op.drop_table('audit_log')
