"""Local servers the alert channels talk to in tests: a webhook receiver (HTTP) and an SMTP server
(aiosmtpd), both on 127.0.0.1. What they received is kept in memory for the test to assert on.

The SMTP server can also speak TLS (STARTTLS or SMTPS, with certificates made here by
:func:`make_certificates`) and require a login, and it records every AUTH command it is sent,
with whether the connection was encrypted at that moment: tests prove a password never crosses a
plain connection."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from dagster_ui import free_port

WEBHOOK_PATH = "/hooks/T000/B000/s3cr3t"  # shaped like a Slack URL: the token is part of the path
RECIPIENTS = "oncall@example.com, data@example.com"


@dataclass
class AlertServers:
    webhook_url: str
    smtp_port: int
    log: Path
    hooks: list[dict[str, Any]] = field(default_factory=list)
    mails: list[Message] = field(default_factory=list)
    smtp: SmtpServer | None = None

    def env(self, ui_url: str) -> dict[str, str]:
        """Settings that send alerts to these servers (and to the log file)."""
        return {
            "LAKEHOUSE_ALERT_LOG": str(self.log),
            "LAKEHOUSE_ALERT_WEBHOOK_URL": self.webhook_url,
            "LAKEHOUSE_ALERT_SMTP_HOST": "127.0.0.1",
            "LAKEHOUSE_ALERT_SMTP_PORT": str(self.smtp_port),
            "LAKEHOUSE_ALERT_EMAIL_TO": RECIPIENTS,
            "LAKEHOUSE_UI_URL": ui_url,
        }

    def logged(self) -> list[dict[str, Any]]:
        if not self.log.is_file():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class Certificates:
    """PEM files: a CA, and a certificate for 127.0.0.1/localhost with its key."""

    ca: Path
    cert: Path
    key: Path


def make_certificates(folder: Path, *, self_signed: bool = False) -> Certificates:
    """A throw-away CA and a server certificate it signed for 127.0.0.1 and localhost, or (with
    ``self_signed``) a certificate that signed itself, which no client trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    server_key = ec.generate_private_key(ec.SECP256R1())
    if self_signed:
        issuer_key, issuer_name = server_key, name("127.0.0.1")
    else:
        issuer_key, issuer_name = ec.generate_private_key(ec.SECP256R1()), name("lakehouse test CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(issuer_name)
        .issuer_name(issuer_name)
        .public_key(issuer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(issuer_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    ca, cert, key = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca.write_bytes(pem(server_cert if self_signed else ca_cert))
    cert.write_bytes(pem(server_cert))
    key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Certificates(ca=ca, cert=cert, key=key)


@dataclass
class SmtpServer:
    """What one SMTP server received: the mails, and every AUTH command as (encrypted?, line)."""

    port: int
    mails: list[Message] = field(default_factory=list)
    auth_commands: list[tuple[bool, str]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


@contextmanager
def smtp_server(
    *,
    tls: Literal["starttls", "smtps"] | None = None,
    certificates: Certificates | None = None,
    users: dict[str, str] | None = None,
    auth_require_tls: bool = True,
) -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1. ``tls``: none (plain), STARTTLS offered, or SMTPS (TLS from
    the first byte). ``users``: accept AUTH for these user/password pairs (the server advertises
    AUTH on a plain connection too when ``auth_require_tls`` is false, as a careless relay would)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message as MessageHandler
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

    port = free_port()  # aiosmtpd connects to itself to confirm it is up: no port 0
    server = SmtpServer(port=port)

    class Inbox(MessageHandler):
        def handle_message(self, message: Message) -> None:
            server.mails.append(message)

    def authenticator(_smtp: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (users or {}).get(data.login.decode()) == data.password.decode()
        if ok:
            server.logins.append(data.login.decode())
        return AuthResult(success=ok)

    class RecordingSMTP(SMTP):
        async def smtp_AUTH(self, arg: str) -> None:
            transport = self.transport
            encrypted = self._tls_protocol is not None or (
                transport is not None and transport.get_extra_info("sslcontext") is not None
            )
            server.auth_commands.append((encrypted, f"AUTH {arg}"))
            await super().smtp_AUTH(arg)

    context = None
    if tls is not None:
        assert certificates is not None, "TLS needs certificates"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificates.cert, certificates.key)
    kwargs: dict[str, Any] = {}
    if users is not None:
        # aiosmtpd counts only STARTTLS as TLS; under SMTPS every byte is encrypted already
        kwargs.update(authenticator=authenticator, auth_require_tls=auth_require_tls and tls != "smtps")

    class Recording(Controller):
        def factory(self) -> SMTP:
            return RecordingSMTP(
                self.handler, tls_context=context if tls == "starttls" else None, hostname="127.0.0.1", **kwargs
            )

    controller = Recording(Inbox(), hostname="127.0.0.1", port=port, ssl_context=context if tls == "smtps" else None)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@contextmanager
def alert_servers(
    log: Path,
    *,
    tls: Literal["starttls", "smtps"] | None = None,
    certificates: Certificates | None = None,
    users: dict[str, str] | None = None,
) -> Iterator[AlertServers]:
    """Start both servers (the SMTP server as :func:`smtp_server` makes it); stop them on exit."""
    received: list[dict[str, Any]] = []

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    with smtp_server(tls=tls, certificates=certificates, users=users) as smtp:
        web = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
        thread = threading.Thread(target=web.serve_forever, name="webhook", daemon=True)
        thread.start()
        try:
            yield AlertServers(
                webhook_url=f"http://127.0.0.1:{web.server_address[1]}{WEBHOOK_PATH}",
                smtp_port=smtp.port,
                log=log,
                hooks=received,
                mails=smtp.mails,
                smtp=smtp,
            )
        finally:
            web.shutdown()
            web.server_close()
