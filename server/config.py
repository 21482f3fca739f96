"""Settings: the only reader of the environment.

`load_settings(environ)` turns the variables of the contract's configuration table (and a `.env`
file beside the working directory, which the real environment overrides) into one frozen
`Settings`. Anything unusable stops the server at start with a one-line `ConfigError`.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")

# Values that look like someone copied an example instead of generating a key.
_PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development", "test", "xxx"}


class ConfigError(ValueError):
    """A setting that makes the server unsafe or unable to run; the message is one line."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # "plain" | "starttls" | "ssl"
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Settings:
    rp_id: str = "localhost"
    rp_name: str = "Tobira"
    origins: tuple[str, ...] = ("http://localhost:8000",)
    database_url: str = "sqlite:///tobira.db"
    secret_key: str = field(default="", repr=False)
    data_dir: Path = Path(".")
    smtp: SmtpSettings | None = None
    mail_from: str = "no-reply@localhost"
    passkey_mandatory_from: datetime | None = None
    max_passkeys: int = 5
    code_ttl: int = 300
    code_resend_after: int = 30
    code_max_attempts: int = 3
    lock_after_failures: int = 10
    trusted_device_days: int = 30
    step_up_window: int = 600
    new_passkey_hold: int = 86400  # seconds; 0 = no holds
    rate_limit: tuple[int, int] | None = (30, 60)  # (failures, per seconds); None = off
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # Where the staff console answers from (empty: everywhere); elsewhere /admin and /api/admin are 404.
    admin_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # Additions to the contract's table (see ratelimit.py for why each exists); (count, per seconds), None = off.
    customer_rate_limit: tuple[int, int] | None = (20, 900)  # failed sign-ins per customer code
    code_send_limit: tuple[int, int] | None = (10, 3600)  # code e-mails per customer
    code_send_address_limit: tuple[int, int] | None = (100, 3600)  # code e-mails per client address
    login_options_limit: tuple[int, int] | None = (60, 60)  # passkey-login options requests per client address
    redis_url: str | None = field(default=None, repr=False)  # unset: the rate-limit windows live in the database
    issuer: str = ""  # OpenID Connect; "" = the first origin (see `oidc_issuer`)
    # The broker's other sites and apps that share the passkeys (contract: "Passkey adoption and reach").
    related_origins: tuple[str, ...] = ()
    android_apps: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (package name, SHA-256 fingerprints)
    apple_app_ids: tuple[str, ...] = ()  # TEAMID.bundle.id
    metrics_listen: tuple[str, int] | None = None  # TOBIRA_METRICS_LISTEN: /metrics on a port of its own
    # Not in the environment: keeps these windows apart from others in a shared Redis (tests use their own).
    redis_key_prefix: str = "tobira"
    # Not in the environment table: fixed by policy (security.md, sessions).
    session_idle: timedelta = timedelta(minutes=30)
    session_absolute: timedelta = timedelta(hours=12)
    pending_login_ttl: timedelta = timedelta(minutes=15)
    max_body_bytes: int = 64 * 1024

    @functools.cached_property
    def page_origins(self) -> tuple[str, ...]:
        """Where Tobira's own pages are served, so where a browser's requests may come from: the
        origins and the related origins (another domain of the broker, proxied to Tobira)."""
        return self.origins + self.related_origins

    @functools.cached_property
    def webauthn_origins(self) -> tuple[str, ...]:
        """What a ceremony's clientDataJSON may name: our pages' origins and the broker's Android
        apps (`android:apk-key-hash:` + the signing certificate's SHA-256, base64url)."""
        return self.page_origins + tuple(android_origin(fingerprint) for _, prints in self.android_apps
                                         for fingerprint in prints)

    @property
    def oidc_issuer(self) -> str:
        """TOBIRA_ISSUER, or the first origin: what `iss` says and where the endpoints are."""
        return self.issuer or self.origins[0]

    @property
    def secure_cookies(self) -> bool:
        """https anywhere means Secure + __Host- cookies everywhere (one cookie name per app)."""
        return any(o.startswith("https://") for o in self.origins)


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _origins(raw: str, *, name: str = "TOBIRA_ORIGIN") -> tuple[str, ...]:
    origins = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{name} entry {item!r} is not an http(s) origin")
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ConfigError(f"{name} entry {item!r} must be scheme://host[:port] only")
        # Browsers serialise origins without a trailing slash; compare in that form.
        origins.append(f"{parts.scheme}://{parts.netloc}".lower())
    if not origins:
        raise ConfigError(f"{name} is empty")
    return tuple(origins)


def _issuer(raw: str, origins: tuple[str, ...]) -> str:
    """An issuer is an https URL (http for localhost) without query or fragment (OpenID Connect
    Discovery §3), and here one of our own origins, with no path: the login it stands for happens
    there, and the routes (/.well-known/openid-configuration, /oauth/...) hang from its root."""
    if not raw:
        return ""
    parts = urlsplit(raw)
    local = parts.hostname in ("localhost", "127.0.0.1")
    if (parts.scheme != "https" and not (parts.scheme == "http" and local) or parts.query or parts.fragment
            or parts.path not in ("", "/")):
        raise ConfigError(f"TOBIRA_ISSUER {raw!r} must be an https origin (scheme://host[:port])")
    issuer = raw.rstrip("/")
    if f"{parts.scheme}://{parts.netloc}".lower() not in origins:
        raise ConfigError(f"TOBIRA_ISSUER {raw!r} is not on one of TOBIRA_ORIGIN's origins")
    return issuer


_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
_FINGERPRINT = re.compile(r"[0-9A-F]{2}(:[0-9A-F]{2}){31}")
_APPLE_APP = re.compile(r"[A-Z0-9]{10}\.[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def android_origin(fingerprint: str) -> str:
    """The origin an Android app's WebAuthn calls carry: its signing certificate's SHA-256."""
    raw = bytes.fromhex(fingerprint.replace(":", ""))
    return "android:apk-key-hash:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _webauthn_may_run(origin: str) -> bool:
    """Browsers run WebAuthn in secure contexts only: https, or http on localhost."""
    parts = urlsplit(origin)
    host = parts.hostname or ""
    return parts.scheme == "https" or host == "localhost" or host.endswith(".localhost")


def _related_origins(raw: str, origins: tuple[str, ...]) -> tuple[str, ...]:
    """The broker's other sites: origins like TOBIRA_ORIGIN's (https except on localhost), on any
    domain (that is the point: WebAuthn Related Origin Requests), none repeated from TOBIRA_ORIGIN."""
    if not raw.strip():
        return ()
    related = _origins(raw, name="TOBIRA_RELATED_ORIGINS")
    for origin in related:
        if not _webauthn_may_run(origin):
            raise ConfigError(f"TOBIRA_RELATED_ORIGINS entry {origin!r}: WebAuthn needs https except on localhost")
        if origin in origins:
            raise ConfigError(f"TOBIRA_RELATED_ORIGINS entry {origin!r} is already in TOBIRA_ORIGIN")
    return tuple(dict.fromkeys(related))


def _android_apps(raw: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`package.name=AA:BB:…[|CC:DD:…]`, comma-separated; fingerprints in upper-case hex."""
    apps = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        package, sep, prints = item.partition("=")
        fingerprints = tuple(p.strip().upper() for p in prints.split("|"))
        if not sep or not _PACKAGE.fullmatch(package.strip()) or not all(_FINGERPRINT.fullmatch(p) for p in fingerprints):
            raise ConfigError(f"TOBIRA_ANDROID_APPS entry {item!r} must look like "
                              "com.broker.app=AA:BB:…(32 bytes of hex)[|…]")
        apps.append((package.strip(), fingerprints))
    return tuple(apps)


def _listen(raw: str) -> tuple[str, int] | None:
    """`host:port` (an IPv6 host in brackets) for /metrics; unset: no metrics endpoint."""
    if not raw:
        return None
    host, sep, port = raw.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"TOBIRA_METRICS_LISTEN {raw!r} must look like 127.0.0.1:9100")
    return host, int(port)


def _apple_app_ids(raw: str) -> tuple[str, ...]:
    ids = tuple(filter(None, (part.strip() for part in raw.split(","))))
    for app_id in ids:
        if not _APPLE_APP.fullmatch(app_id):
            raise ConfigError(f"TOBIRA_APPLE_APP_IDS entry {app_id!r} must look like ABCDE12345.jp.broker.app")
    return ids


def _check_rp_id(rp_id: str, origins: tuple[str, ...]) -> None:
    """WebAuthn §5.1.3: the RP ID must equal the origin's host or be a registrable suffix of it."""
    if not rp_id or rp_id != rp_id.strip().lower() or "/" in rp_id or ":" in rp_id:
        raise ConfigError(f"TOBIRA_RP_ID {rp_id!r} must be a bare lower-case host name")
    for origin in origins:
        parts = urlsplit(origin)
        host = parts.hostname or ""
        if not (host == rp_id or host.endswith("." + rp_id)):
            raise ConfigError(f"TOBIRA_RP_ID {rp_id!r} does not match origin {origin!r}")
        if not _webauthn_may_run(origin):
            raise ConfigError(f"origin {origin!r}: WebAuthn needs https except on localhost")


def _smtp(raw: str) -> SmtpSettings:
    parts = urlsplit(raw)
    security = {"smtp": "plain", "smtp+starttls": "starttls", "smtps": "ssl"}.get(parts.scheme)
    if security is None:
        raise ConfigError("TOBIRA_SMTP_URL must start with smtp://, smtp+starttls:// or smtps://")
    if not parts.hostname:
        raise ConfigError("TOBIRA_SMTP_URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("TOBIRA_SMTP_URL has an invalid port") from None
    return SmtpSettings(
        host=parts.hostname,
        port=port or {"plain": 25, "starttls": 587, "ssl": 465}[security],
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _mandatory_from(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ConfigError(f"TOBIRA_PASSKEY_MANDATORY_FROM {raw!r} is not an ISO date-time") from None
    # The broker announces the date in Japan time; an offset-less value means JST.
    return value if value.tzinfo else value.replace(tzinfo=JST)


_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def _rate_limit(raw: str, name: str = "TOBIRA_RATE_LIMIT", example: str = "30/minute") -> tuple[int, int] | None:
    """`COUNT/UNIT` or `COUNT/N UNITs` (30/minute, 10/15minutes, 100/hour) as (count, seconds); `0` is off."""
    raw = raw.strip()
    if raw == "0":
        return None
    m = re.fullmatch(r"(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?", raw)
    if not m or int(m.group(1)) == 0 or int(m.group(2) or 1) == 0:
        raise ConfigError(f"{name} {raw!r} must look like {example}, or 0 for off")
    return int(m.group(1)), int(m.group(2) or 1) * _UNITS[m.group(3)]


def _customer_rate_limit(raw: str | None, lock_after: int) -> tuple[int, int] | None:
    """Failed sign-ins per customer code. The default follows the lockout: twice its count per 15
    minutes, so the lock and the contract's answers after it (423/401) come first. A count below
    the lockout's would refuse a customer before the lockout would lock: refused."""
    if raw is None or raw.strip() == "":
        return 2 * lock_after, 900
    limit = _rate_limit(raw, "TOBIRA_CUSTOMER_RATE_LIMIT", "20/15minutes")
    if limit is not None and limit[0] < lock_after:
        raise ConfigError(f"TOBIRA_CUSTOMER_RATE_LIMIT allows {limit[0]} failures, fewer than "
                          f"TOBIRA_LOCK_AFTER_FAILURES={lock_after}: it would refuse customers before the lockout")
    return limit


def _redis_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError("TOBIRA_REDIS_URL must look like redis://host:6379/0 or rediss://…")
    try:
        parts.port
    except ValueError:
        raise ConfigError("TOBIRA_REDIS_URL has an invalid port") from None
    if parts.path not in ("", "/") and not parts.path[1:].isdigit():
        raise ConfigError("TOBIRA_REDIS_URL: the path must be a database number, like /0")
    return raw.strip()


def _proxies(raw: str, variable: str = "TOBIRA_TRUSTED_PROXIES") -> tuple:
    nets = []
    for item in raw.split(","):
        if item.strip():
            try:
                nets.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ConfigError(f"{variable} entry {item.strip()!r} is not an address or CIDR") from None
    return tuple(nets)


def _database_url(raw: str, data_dir: Path) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(f"TOBIRA_DATABASE_URL {raw!r} is not a database URL") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"TOBIRA_DATABASE_URL: {backend} is not supported (sqlite or postgresql)")
    if backend == "sqlite":
        path = url.database or ""
        if path in ("", ":memory:"):
            # Each pooled connection would see its own empty database.
            raise ConfigError("TOBIRA_DATABASE_URL: an in-memory SQLite database cannot be shared; give a file")
        if not Path(path).is_absolute():
            url = url.set(database=str((data_dir / path).resolve()))
    return url.render_as_string(hide_password=False)


def _secret_key(env: Mapping[str, str], data_dir: Path) -> str:
    raw = env.get("TOBIRA_SECRET_KEY")
    if raw is not None:
        if raw.strip().lower() in _PLACEHOLDER_SECRETS or len(raw) < 32:
            raise ConfigError("TOBIRA_SECRET_KEY must be a random value of at least 32 characters")
        return raw
    # Development: generate once and keep it, so restarts keep sessions valid.
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


def load_settings(environ: Mapping[str, str], *, dotenv: Path | None = Path(".env")) -> Settings:
    env: dict[str, str] = {}
    if dotenv is not None and dotenv.is_file():
        from dotenv import dotenv_values

        env.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
    env.update({k: v for k, v in environ.items() if k.startswith("TOBIRA_")})

    data_dir = Path(env.get("TOBIRA_DATA_DIR") or ".").resolve()
    origins = _origins(env.get("TOBIRA_ORIGIN", "http://localhost:8000"))
    rp_id = env.get("TOBIRA_RP_ID", "localhost")
    _check_rp_id(rp_id, origins)
    mandatory = env.get("TOBIRA_PASSKEY_MANDATORY_FROM")
    smtp = env.get("TOBIRA_SMTP_URL")
    redis_url = env.get("TOBIRA_REDIS_URL", "").strip()
    lock_after = _int(env, "TOBIRA_LOCK_AFTER_FAILURES", 10)
    return Settings(
        rp_id=rp_id,
        rp_name=env.get("TOBIRA_RP_NAME", "Tobira") or "Tobira",
        origins=origins,
        database_url=_database_url(env.get("TOBIRA_DATABASE_URL", "sqlite:///tobira.db"), data_dir),
        secret_key=_secret_key(env, data_dir),
        data_dir=data_dir,
        smtp=_smtp(smtp) if smtp else None,
        mail_from=env.get("TOBIRA_MAIL_FROM", "no-reply@localhost"),
        passkey_mandatory_from=_mandatory_from(mandatory) if mandatory else None,
        max_passkeys=_int(env, "TOBIRA_MAX_PASSKEYS", 5),
        code_ttl=_int(env, "TOBIRA_CODE_TTL", 300),
        code_resend_after=_int(env, "TOBIRA_CODE_RESEND_AFTER", 30, minimum=0),
        code_max_attempts=_int(env, "TOBIRA_CODE_MAX_ATTEMPTS", 3),
        lock_after_failures=lock_after,
        trusted_device_days=_int(env, "TOBIRA_TRUSTED_DEVICE_DAYS", 30, minimum=0),
        step_up_window=_int(env, "TOBIRA_STEP_UP_WINDOW", 600),
        new_passkey_hold=_int(env, "TOBIRA_NEW_PASSKEY_HOLD", 86400, minimum=0),
        rate_limit=_rate_limit(env.get("TOBIRA_RATE_LIMIT", "30/minute")),
        trusted_proxies=_proxies(env.get("TOBIRA_TRUSTED_PROXIES", "")),
        admin_networks=_proxies(env.get("TOBIRA_ADMIN_NETWORKS", ""), "TOBIRA_ADMIN_NETWORKS"),
        customer_rate_limit=_customer_rate_limit(env.get("TOBIRA_CUSTOMER_RATE_LIMIT"), lock_after),
        code_send_limit=_rate_limit(env.get("TOBIRA_CODE_SEND_LIMIT", "10/hour"), "TOBIRA_CODE_SEND_LIMIT",
                                    "10/hour"),
        code_send_address_limit=_rate_limit(env.get("TOBIRA_CODE_SEND_ADDRESS_LIMIT", "100/hour"),
                                            "TOBIRA_CODE_SEND_ADDRESS_LIMIT", "100/hour"),
        login_options_limit=_rate_limit(env.get("TOBIRA_LOGIN_OPTIONS_LIMIT", "60/minute"),
                                        "TOBIRA_LOGIN_OPTIONS_LIMIT", "60/minute"),
        redis_url=_redis_url(redis_url) if redis_url else None,
        issuer=_issuer(env.get("TOBIRA_ISSUER", "").strip(), origins),
        related_origins=_related_origins(env.get("TOBIRA_RELATED_ORIGINS", ""), origins),
        android_apps=_android_apps(env.get("TOBIRA_ANDROID_APPS", "")),
        apple_app_ids=_apple_app_ids(env.get("TOBIRA_APPLE_APP_IDS", "")),
        metrics_listen=_listen(env.get("TOBIRA_METRICS_LISTEN", "").strip()),
    )


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
