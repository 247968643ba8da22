"""E-mail alerts never send the SMTP password over a plain or unverified connection: with a login
configured, TLS is required (SMTPS, or STARTTLS checked against trusted CAs) before AUTH; a
local relay without a login may still be plain SMTP. Real SMTP servers on 127.0.0.1 (aiosmtpd,
tests/servers.py) record what they received, so the tests see whether AUTH was ever sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from servers import Certificates, SmtpServer, make_certificates, smtp_server

from lakehouse.alerts import Alert
from lakehouse.exceptions import SettingsError

USER = "alerts@example.com"
PASSWORD = "smtp-Pa55word-for-tls-tests"  # a test server's password


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path / "trusted")


@pytest.fixture
def untrusted(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path / "untrusted", self_signed=True)


def smtp_env(monkeypatch: pytest.MonkeyPatch, server: SmtpServer, *, login: bool = True, **extra: str) -> None:
    monkeypatch.setenv("LAKEHOUSE_ALERT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LAKEHOUSE_ALERT_SMTP_PORT", str(server.port))
    monkeypatch.setenv("LAKEHOUSE_ALERT_EMAIL_TO", "oncall@example.com")
    if login:
        monkeypatch.setenv("LAKEHOUSE_ALERT_SMTP_USER", USER)
        monkeypatch.setenv("LAKEHOUSE_ALERT_SMTP_PASSWORD", PASSWORD)
    for key, value in extra.items():
        monkeypatch.setenv(key, value)


def send() -> dict[str, str]:
    """One alert through the resource the code location builds (secrets resolved from EnvVar)."""
    from resources import build_resources

    with dg.build_resources({"alerts": build_resources()["alerts"]}) as resources:
        return dict(
            resources.alerts.send(Alert(kind="run_failed", job="daily", run_id="r-tls", url="u", summary="boom"))
        )


@pytest.fixture
def plain_server_offering_auth() -> Iterator[SmtpServer]:
    """No STARTTLS, but AUTH advertised on the plain connection: the old code logged in here."""
    with smtp_server(users={USER: PASSWORD}, auth_require_tls=False) as server:
        yield server


def test_a_password_is_never_sent_to_a_server_without_starttls(lake_env, monkeypatch, plain_server_offering_auth):
    server = plain_server_offering_auth
    smtp_env(monkeypatch, server)
    outcome = send()
    assert outcome["log"] == "sent"
    assert outcome["email"].startswith("AlertDeliveryError: SMTP server 127.0.0.1:")
    assert f"127.0.0.1:{server.port} does not offer STARTTLS" in outcome["email"]
    assert "LAKEHOUSE_ALERT_SMTP_SSL" in outcome["email"] and PASSWORD not in outcome["email"]
    assert server.auth_commands == [] and server.logins == [] and server.mails == []


def test_a_relay_without_login_stays_plain_smtp(lake_env, monkeypatch, plain_server_offering_auth):
    server = plain_server_offering_auth
    smtp_env(monkeypatch, server, login=False)
    assert send()["email"] == "sent"
    (mail,) = server.mails
    assert mail["To"] == "oncall@example.com" and "boom" in mail.get_payload()
    assert server.auth_commands == []


def test_starttls_with_a_certificate_nobody_trusts_is_refused(lake_env, monkeypatch, untrusted):
    with smtp_server(tls="starttls", certificates=untrusted, users={USER: PASSWORD}) as server:
        smtp_env(monkeypatch, server)
        outcome = send()
    assert outcome["email"].startswith(f"AlertDeliveryError: TLS to SMTP server 127.0.0.1:{server.port} failed")
    assert "certificate verify failed" in outcome["email"] and "LAKEHOUSE_ALERT_SMTP_CA_FILE" in outcome["email"]
    assert server.auth_commands == [] and server.mails == []


def test_starttls_with_a_certificate_from_a_trusted_ca_sends_and_logs_in_encrypted(lake_env, monkeypatch, certificates):
    with smtp_server(tls="starttls", certificates=certificates, users={USER: PASSWORD}) as server:
        smtp_env(monkeypatch, server, LAKEHOUSE_ALERT_SMTP_CA_FILE=str(certificates.ca))
        outcome = send()
    assert outcome["email"] == "sent"
    assert [encrypted for encrypted, _ in server.auth_commands] == [True]
    assert server.logins == [USER] and len(server.mails) == 1


def test_smtps_trusts_the_ca_of_ssl_cert_file(lake_env, monkeypatch, certificates):
    with smtp_server(tls="smtps", certificates=certificates, users={USER: PASSWORD}) as server:
        smtp_env(monkeypatch, server, LAKEHOUSE_ALERT_SMTP_SSL="true", SSL_CERT_FILE=str(certificates.ca))
        outcome = send()
    assert outcome["email"] == "sent"
    assert [encrypted for encrypted, _ in server.auth_commands] == [True]
    assert server.logins == [USER] and len(server.mails) == 1


def test_a_login_without_any_tls_is_a_settings_error(lake_env):
    from lakehouse.settings import get_settings

    env = {
        "LAKEHOUSE_HOME": str(lake_env),
        "LAKEHOUSE_ALERT_SMTP_HOST": "mail.example.com",
        "LAKEHOUSE_ALERT_EMAIL_TO": "oncall@example.com",
        "LAKEHOUSE_ALERT_SMTP_USER": USER,
        "LAKEHOUSE_ALERT_SMTP_PASSWORD": PASSWORD,
        "LAKEHOUSE_ALERT_SMTP_STARTTLS": "false",
    }
    with pytest.raises(SettingsError, match="LAKEHOUSE_ALERT_SMTP_STARTTLS is false") as error:
        get_settings(env)
    assert PASSWORD not in str(error.value)
    assert get_settings({**env, "LAKEHOUSE_ALERT_SMTP_SSL": "true"}).alerts.smtp_ssl
    with pytest.raises(SettingsError, match="LAKEHOUSE_ALERT_SMTP_CA_FILE"):
        get_settings({**env, "LAKEHOUSE_ALERT_SMTP_STARTTLS": "true", "LAKEHOUSE_ALERT_SMTP_CA_FILE": "/no/such.pem"})
