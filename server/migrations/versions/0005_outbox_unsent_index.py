"""an index of unsent mail (the sender's query no longer scans sent mail)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 02:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_mail_outbox_unsent', 'mail_outbox', ['id'], unique=False,
                    sqlite_where=sa.text('sent_at IS NULL'), postgresql_where=sa.text('sent_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_mail_outbox_unsent', table_name='mail_outbox')
