"""`tobira client ...` and `tobira keys rotate`: the operator registers the broker's apps (OpenID
Connect clients) and rotates the signing keys."""

from __future__ import annotations

import json

from . import oidc_clients, oidc_keys
from .config import utcnow


def _cli():
    from . import cli  # (cli imports this module to build its parser)
    return cli


def _run(fn, *args, **kwargs):
    cli = _cli()
    settings = cli._settings()
    try:
        return cli._database(settings).run_sync(fn, *args, **kwargs)
    except oidc_clients.ClientError as exc:
        raise cli.Fail(str(exc)) from None


def cmd_client_add(args) -> None:
    client_id, secret = _run(oidc_clients.add, name=args.name, redirect_uris=args.redirect_uri, public=args.public,
                             post_logout_redirect_uris=args.post_logout_redirect_uri or [],
                             backchannel_logout_uri=args.backchannel_logout_uri,
                             require_passkey=args.require_passkey, scopes=args.scope, now=utcnow())
    print(f"client_id: {client_id}")
    if secret is not None:
        print(f"client_secret: {secret}")


def cmd_client_list(args) -> None:
    for app in _run(oidc_clients.listing):
        print(json.dumps(app, ensure_ascii=False))


def cmd_client_remove(args) -> None:
    _run(oidc_clients.remove, args.client_id)
    print(f"removed client {args.client_id}; its grants and tokens are void")


def cmd_client_rotate_secret(args) -> None:
    print(f"client_secret: {_run(oidc_clients.rotate_secret, args.client_id)}")


def cmd_keys_rotate(args) -> None:
    settings = _cli()._settings()
    kids = _run(oidc_keys.rotate, settings.secret_key, utcnow())
    print("new signing keys: " + ", ".join(kids) + " (the old ones stay published until their tokens expire)")


def add_parsers(sub) -> None:
    client = sub.add_parser("client", help="the broker's apps that sign in through Tobira (OpenID Connect)")
    actions = client.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register an app; prints client_id (and client_secret, once)")
    add.add_argument("name")
    add.add_argument("--redirect-uri", action="append", required=True, help="exact URI (repeat for more)")
    add.add_argument("--public", action="store_true", help="no secret: a smartphone or single-page app (PKCE)")
    add.add_argument("--post-logout-redirect-uri", action="append", help="where /oauth/logout may send back")
    add.add_argument("--backchannel-logout-uri", help="where Tobira posts a logout token when a session ends")
    add.add_argument("--require-passkey", action="store_true",
                     help="from TOBIRA_PASSKEY_MANDATORY_FROM, only a passkey login signs in to this app")
    add.add_argument("--scope", help=f"the scopes it may ask for (default: {' '.join(oidc_clients.SCOPES)})")
    add.set_defaults(fn=cmd_client_add)
    actions.add_parser("list", help="one JSON object per app").set_defaults(fn=cmd_client_list)
    for name, fn, help_ in (("remove", cmd_client_remove, "remove an app; its grants and tokens are void"),
                            ("rotate-secret", cmd_client_rotate_secret, "a new secret; the old one stops at once")):
        cmd = actions.add_parser(name, help=help_)
        cmd.add_argument("client_id")
        cmd.set_defaults(fn=fn)
    keys = sub.add_parser("keys", help="OpenID Connect signing keys").add_subparsers(dest="action", required=True)
    keys.add_parser("rotate", help="new signing keys; the old stay published until their tokens expire") \
        .set_defaults(fn=cmd_keys_rotate)
