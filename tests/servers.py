"""Local servers the alert channels talk to in tests: a webhook receiver (HTTP) and an SMTP server
(aiosmtpd), both on 127.0.0.1. What they received is kept in memory for the test to assert on."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WEBHOOK_PATH = "/hooks/T000/B000/s3cr3t"  # shaped like a Slack URL: the token is part of the path
RECIPIENTS = "oncall@example.com, data@example.com"


@dataclass
class AlertServers:
    webhook_url: str
    smtp_port: int
    log: Path
    hooks: list[dict[str, Any]] = field(default_factory=list)
    mails: list[Message] = field(default_factory=list)

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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def alert_servers(log: Path) -> Iterator[AlertServers]:
    """Start both servers; stop them on exit."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message as MessageHandler

    received: list[dict[str, Any]] = []
    mails: list[Message] = []

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    class Inbox(MessageHandler):
        def handle_message(self, message: Message) -> None:
            mails.append(message)

    port = _free_port()  # aiosmtpd connects to itself to confirm it is up: no port 0
    smtp = Controller(Inbox(), hostname="127.0.0.1", port=port)
    smtp.start()
    web = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    thread = threading.Thread(target=web.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        yield AlertServers(
            webhook_url=f"http://127.0.0.1:{web.server_address[1]}{WEBHOOK_PATH}",
            smtp_port=port,
            log=log,
            hooks=received,
            mails=mails,
        )
    finally:
        web.shutdown()
        web.server_close()
        smtp.stop()
