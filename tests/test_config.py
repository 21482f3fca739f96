"""Settings from the environment: the contract's table, and refusals with one-line reasons."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from server.config import JST, ConfigError, load_settings


def load(tmp_path, **env):
    return load_settings({"TOBIRA_DATA_DIR": str(tmp_path), **env}, dotenv=None)


def test_defaults(tmp_path):
    s = load(tmp_path)
    assert (s.rp_id, s.rp_name, s.origins) == ("localhost", "Tobira", ("http://localhost:8000",))
    assert s.database_url == f"sqlite:///{tmp_path / 'tobira.db'}"
    assert (s.max_passkeys, s.code_ttl, s.code_resend_after, s.code_max_attempts) == (5, 300, 30, 3)
    assert (s.lock_after_failures, s.trusted_device_days, s.step_up_window) == (10, 30, 600)
    assert s.rate_limit == (30, 60) and s.smtp is None and s.mail_from == "no-reply@localhost"
    assert s.passkey_mandatory_from is None and not s.secure_cookies


def test_dev_secret_is_generated_once_into_the_data_folder(tmp_path):
    first = load(tmp_path).secret_key
    assert len(first) >= 48 and (tmp_path / "secret_key").exists()
    assert load(tmp_path).secret_key == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_settings_are_frozen(tmp_path):
    with pytest.raises(Exception):
        load(tmp_path).rp_id = "evil.example"


def test_everything_from_the_table(tmp_path):
    s = load(tmp_path, TOBIRA_RP_ID="broker.example.jp", TOBIRA_RP_NAME="Example 証券",
             TOBIRA_ORIGIN="https://broker.example.jp, https://login.broker.example.jp",
             TOBIRA_DATABASE_URL="postgresql+psycopg://u:p@db:5432/tobira", TOBIRA_SECRET_KEY="s" * 40,
             TOBIRA_SMTP_URL="smtp+starttls://mailer:p%40ss@mail.example.jp:2587", TOBIRA_MAIL_FROM="a@example.jp",
             TOBIRA_PASSKEY_MANDATORY_FROM="2027-04-01T00:00", TOBIRA_MAX_PASSKEYS="3", TOBIRA_CODE_TTL="120",
             TOBIRA_CODE_RESEND_AFTER="60", TOBIRA_CODE_MAX_ATTEMPTS="5", TOBIRA_LOCK_AFTER_FAILURES="6",
             TOBIRA_TRUSTED_DEVICE_DAYS="7", TOBIRA_STEP_UP_WINDOW="300", TOBIRA_RATE_LIMIT="100/hour",
             TOBIRA_TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.1")
    assert s.origins == ("https://broker.example.jp", "https://login.broker.example.jp") and s.secure_cookies
    assert s.database_url == "postgresql+psycopg://u:p@db:5432/tobira"
    assert (s.smtp.host, s.smtp.port, s.smtp.security, s.smtp.username, s.smtp.password) == \
        ("mail.example.jp", 2587, "starttls", "mailer", "p@ss")
    assert s.passkey_mandatory_from == datetime(2027, 4, 1, tzinfo=JST)
    assert s.passkey_mandatory_from == datetime(2027, 3, 31, 15, tzinfo=timezone.utc)
    assert (s.max_passkeys, s.code_ttl, s.code_resend_after, s.code_max_attempts, s.lock_after_failures,
            s.trusted_device_days, s.step_up_window) == (3, 120, 60, 5, 6, 7, 300)
    assert s.rate_limit == (100, 3600) and len(s.trusted_proxies) == 2
    assert "p@ss" not in repr(s.smtp) and "s" * 40 not in repr(s)


@pytest.mark.parametrize("url,security,port", [("smtp://h", "plain", 25), ("smtps://h", "ssl", 465),
                                               ("smtp+starttls://h", "starttls", 587)])
def test_smtp_url_forms(tmp_path, url, security, port):
    s = load(tmp_path, TOBIRA_SMTP_URL=url).smtp
    assert (s.security, s.port, s.username) == (security, port, None)


def test_rate_limit_off(tmp_path):
    assert load(tmp_path, TOBIRA_RATE_LIMIT="0").rate_limit is None


def test_rate_limit_additions(tmp_path):
    """Additions to the contract's table: per-customer failures, code e-mails, Redis."""
    s = load(tmp_path)
    assert (s.customer_rate_limit, s.code_send_limit, s.code_send_address_limit) == ((20, 900), (10, 3600),
                                                                                      (100, 3600))
    assert s.redis_url is None
    # The per-customer default follows the lockout: twice its count per 15 minutes.
    assert load(tmp_path, TOBIRA_LOCK_AFTER_FAILURES="6").customer_rate_limit == (12, 900)
    s = load(tmp_path, TOBIRA_CUSTOMER_RATE_LIMIT="10/15minutes", TOBIRA_CODE_SEND_LIMIT="5 / 2 hours",
             TOBIRA_CODE_SEND_ADDRESS_LIMIT="0", TOBIRA_RATE_LIMIT="2/second",
             TOBIRA_REDIS_URL="rediss://:pw@cache.example.jp:6380/2")
    assert (s.customer_rate_limit, s.code_send_limit, s.code_send_address_limit) == ((10, 900), (5, 7200), None)
    assert s.rate_limit == (2, 1) and s.redis_url == "rediss://:pw@cache.example.jp:6380/2"
    assert "pw@" not in repr(s)
    assert load(tmp_path, TOBIRA_CUSTOMER_RATE_LIMIT="0").customer_rate_limit is None


def test_mandatory_date_with_offset_is_kept(tmp_path):
    s = load(tmp_path, TOBIRA_PASSKEY_MANDATORY_FROM="2027-04-01T00:00:00+00:00")
    assert s.passkey_mandatory_from == datetime(2027, 4, 1, tzinfo=timezone.utc)


def test_dotenv_is_read_and_the_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("TOBIRA_RP_NAME=From dotenv\nTOBIRA_CODE_TTL=100\n")
    s = load_settings({"TOBIRA_DATA_DIR": str(tmp_path), "TOBIRA_CODE_TTL": "200"}, dotenv=dotenv)
    assert (s.rp_name, s.code_ttl) == ("From dotenv", 200)


@pytest.mark.parametrize("env,words", [
    ({"TOBIRA_RP_ID": "example.com"}, "does not match origin"),
    ({"TOBIRA_RP_ID": "example.com", "TOBIRA_ORIGIN": "https://example.com.evil.net"}, "does not match"),
    ({"TOBIRA_RP_ID": "ample.com", "TOBIRA_ORIGIN": "https://example.com"}, "does not match"),
    ({"TOBIRA_RP_ID": "example.com", "TOBIRA_ORIGIN": "http://example.com"}, "https"),
    ({"TOBIRA_RP_ID": "https://example.com", "TOBIRA_ORIGIN": "https://example.com"}, "bare"),
    ({"TOBIRA_ORIGIN": "localhost:8000"}, "not an http(s) origin"),
    ({"TOBIRA_ORIGIN": "http://localhost:8000/login"}, "scheme://host"),
    ({"TOBIRA_ORIGIN": " , "}, "empty"),
    ({"TOBIRA_DATABASE_URL": "not a url"}, "not a database URL"),
    ({"TOBIRA_DATABASE_URL": "mysql://u@h/db"}, "not supported"),
    ({"TOBIRA_DATABASE_URL": "sqlite://"}, "in-memory"),
    ({"TOBIRA_SECRET_KEY": "changeme"}, "at least 32"),
    ({"TOBIRA_SMTP_URL": "http://mail"}, "smtp://"),
    ({"TOBIRA_CODE_TTL": "five"}, "whole number"),
    ({"TOBIRA_MAX_PASSKEYS": "0"}, "at least 1"),
    ({"TOBIRA_PASSKEY_MANDATORY_FROM": "next april"}, "ISO"),
    ({"TOBIRA_RATE_LIMIT": "lots"}, "30/minute"),
    ({"TOBIRA_TRUSTED_PROXIES": "10.0.0.0/33"}, "not an address"),
    ({"TOBIRA_RATE_LIMIT": "5/0minutes"}, "30/minute"),
    ({"TOBIRA_CUSTOMER_RATE_LIMIT": "lots"}, "20/15minutes"),
    ({"TOBIRA_CUSTOMER_RATE_LIMIT": "5/15minutes"}, "fewer than TOBIRA_LOCK_AFTER_FAILURES=10"),
    ({"TOBIRA_CODE_SEND_LIMIT": "ten an hour"}, "10/hour"),
    ({"TOBIRA_CODE_SEND_ADDRESS_LIMIT": "-1"}, "100/hour"),
    ({"TOBIRA_REDIS_URL": "http://cache:6379"}, "redis://"),
    ({"TOBIRA_REDIS_URL": "redis://"}, "redis://"),
    ({"TOBIRA_REDIS_URL": "redis://cache:port"}, "invalid port"),
    ({"TOBIRA_REDIS_URL": "redis://cache:6379/tobira"}, "database number"),
])
def test_bad_settings_are_refused_with_one_line(tmp_path, env, words):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **env)
    assert words in str(caught.value) and "\n" not in str(caught.value)
