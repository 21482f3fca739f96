"""OpenID Connect: apps (clients), signing keys, grants and codes; what the session tells apps

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 04:40:00
"""

from alembic import op
import sqlalchemy as sa
import server.models


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.alter_column('next_path', type_=sa.String(length=1024), existing_nullable=True)
        batch_op.add_column(sa.Column('login_synced', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('verified_synced', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('sid', sa.String(length=43), nullable=True))
        batch_op.create_index('ix_sessions_sid', ['sid'], unique=False)
    op.create_table(
        'oauth_clients',
        sa.Column('client_id', sa.String(length=43), primary_key=True),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=True),
        sa.Column('redirect_uris', sa.Text(), nullable=False),
        sa.Column('post_logout_redirect_uris', sa.Text(), nullable=False),
        sa.Column('backchannel_logout_uri', sa.String(length=500), nullable=True),
        sa.Column('require_passkey', sa.Boolean(), nullable=False),
        sa.Column('scopes', sa.String(length=200), nullable=False),
        sa.Column('created_at', server.models.UTCDateTime(), nullable=False),
    )
    op.create_table(
        'signing_keys',
        sa.Column('kid', sa.String(length=64), primary_key=True),
        sa.Column('alg', sa.String(length=10), nullable=False),
        sa.Column('public_jwk', sa.Text(), nullable=False),
        sa.Column('private_jwk', sa.Text(), nullable=False),
        sa.Column('created_at', server.models.UTCDateTime(), nullable=False),
        sa.Column('retired_at', server.models.UTCDateTime(), nullable=True),
    )
    op.create_index('ix_signing_keys_in_use', 'signing_keys', ['alg'], unique=True,
                    sqlite_where=sa.text('retired_at IS NULL'), postgresql_where=sa.text('retired_at IS NULL'))
    op.create_table(
        'oauth_grants',
        sa.Column('id', sa.String(length=43), primary_key=True),
        sa.Column('client_id', sa.String(length=43), sa.ForeignKey('oauth_clients.client_id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE'), nullable=False),
        sa.Column('sid', sa.String(length=43), nullable=False),
        sa.Column('scope', sa.String(length=200), nullable=False),
        sa.Column('auth_time', server.models.UTCDateTime(), nullable=False),
        sa.Column('amr', sa.String(length=50), nullable=False),
        sa.Column('acr', sa.String(length=10), nullable=True),
        sa.Column('created_at', server.models.UTCDateTime(), nullable=False),
        sa.Column('revoked_at', server.models.UTCDateTime(), nullable=True),
    )
    op.create_index('ix_oauth_grants_client_id', 'oauth_grants', ['client_id'])
    op.create_index('ix_oauth_grants_user_id', 'oauth_grants', ['user_id'])
    op.create_index('ix_oauth_grants_sid', 'oauth_grants', ['sid'])
    op.create_table(
        'oauth_codes',
        sa.Column('code_hash', sa.String(length=64), primary_key=True),
        sa.Column('grant_id', sa.String(length=43), sa.ForeignKey('oauth_grants.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('redirect_uri', sa.Text(), nullable=False),
        sa.Column('code_challenge', sa.String(length=128), nullable=False),
        sa.Column('nonce', sa.String(length=255), nullable=True),
        sa.Column('expires_at', server.models.UTCDateTime(), nullable=False),
        sa.Column('used_at', server.models.UTCDateTime(), nullable=True),
    )
    op.create_index('ix_oauth_codes_grant_id', 'oauth_codes', ['grant_id'])
    op.create_index('ix_oauth_codes_expires_at', 'oauth_codes', ['expires_at'])
    op.create_table(
        'oauth_refresh_tokens',
        sa.Column('token_hash', sa.String(length=64), primary_key=True),
        sa.Column('grant_id', sa.String(length=43), sa.ForeignKey('oauth_grants.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('created_at', server.models.UTCDateTime(), nullable=False),
        sa.Column('expires_at', server.models.UTCDateTime(), nullable=False),
        sa.Column('used_at', server.models.UTCDateTime(), nullable=True),
    )
    op.create_index('ix_oauth_refresh_tokens_grant_id', 'oauth_refresh_tokens', ['grant_id'])
    op.create_index('ix_oauth_refresh_tokens_expires_at', 'oauth_refresh_tokens', ['expires_at'])
    op.create_table(
        'logout_deliveries',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('client_id', sa.String(length=43), sa.ForeignKey('oauth_clients.client_id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('sid', sa.String(length=43), nullable=False),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE'), nullable=False),
        sa.Column('created_at', server.models.UTCDateTime(), nullable=False),
        sa.Column('next_attempt_at', server.models.UTCDateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('claimed_until', server.models.UTCDateTime(), nullable=True),
        sa.Column('delivered_at', server.models.UTCDateTime(), nullable=True),
        sa.Column('last_error', sa.String(length=300), nullable=True),
    )
    op.create_index('ix_logout_deliveries_user_id', 'logout_deliveries', ['user_id'])
    op.create_index('ix_logout_deliveries_next_attempt_at', 'logout_deliveries', ['next_attempt_at'])


def downgrade() -> None:
    op.drop_table('logout_deliveries')
    op.drop_table('oauth_refresh_tokens')
    op.drop_table('oauth_codes')
    op.drop_table('oauth_grants')
    op.drop_table('signing_keys')
    op.drop_table('oauth_clients')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_sessions_sid')
        batch_op.drop_column('sid')
        batch_op.drop_column('verified_synced')
        batch_op.drop_column('login_synced')
        batch_op.alter_column('next_path', type_=sa.String(length=200), existing_nullable=True)
