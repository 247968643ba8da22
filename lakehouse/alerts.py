"""Failure alerts: what failed (job, assets, partition, run, error, failed checks, a link to the run
in the UI) sent to every configured channel: a JSON-lines log file (always), a webhook (a JSON
POST with a Slack-compatible ``text``/``blocks`` payload) and e-mail over SMTP.

Each channel is tried independently; one that fails is reported in the result and does not stop
the others. Secrets (the webhook URL, the SMTP password) reach :class:`AlertResource` only as
``dg.EnvVar``, and a failed channel's error is redacted before anyone logs it. With a login, e-mail
needs TLS (SMTPS, or STARTTLS checked against trusted CAs) before the password is sent; a relay
without a login may stay plain SMTP.
"""

from __future__ import annotations

import datetime as dt
import json
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dagster as dg

from lakehouse.exceptions import AlertDeliveryError
from lakehouse.retries import retry_call
from lakehouse.settings import Settings, redact

__all__ = ["Alert", "AlertResource", "alert_for_run"]

RUN_FAILED = "run_failed"
BLOCKING_CHECK_FAILED = "blocking_check_failed"


@dataclass(frozen=True)
class Alert:
    """One failure, with everything an on-call engineer needs to start."""

    kind: str
    job: str
    run_id: str
    url: str
    summary: str
    assets: list[str] = field(default_factory=list)
    partition: str | None = None
    failed_checks: list[str] = field(default_factory=list)
    occurred_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    @property
    def title(self) -> str:
        what = "blocking check failed" if self.kind == BLOCKING_CHECK_FAILED else "run failed"
        where = f" [{self.partition}]" if self.partition else ""
        return f"lakehouse {what}: {self.job}{where}"

    def text(self) -> str:
        lines = [self.title, f"run: {self.run_id}", f"link: {self.url}"]
        if self.assets:
            lines.append("assets: " + ", ".join(self.assets))
        if self.partition:
            lines.append(f"partition: {self.partition}")
        if self.failed_checks:
            lines.append("failed checks: " + ", ".join(self.failed_checks))
        lines.append(f"error: {self.summary}")
        return "\n".join(lines)

    def webhook_payload(self) -> dict[str, Any]:
        """Slack's incoming-webhook shape (``text`` + ``blocks``), with the structured alert too."""
        fields = [
            f"*Job*\n{self.job}",
            f"*Partition*\n{self.partition or '-'}",
            f"*Run*\n<{self.url}|{self.run_id[:8]}>",
        ]
        return {
            "text": f"{self.title}: {self.summary}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
                {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
                {"type": "section", "text": {"type": "mrkdwn", "text": f"```{self.summary[:2500]}```"}},
            ],
            "alert": asdict(self),
        }


def _summary(error: str, limit: int = 600) -> str:
    """The first meaningful lines of an error, without the Python stack."""
    lines = [ln for ln in error.strip().splitlines() if ln.strip() and not ln.startswith("  File ")]
    text = " | ".join(lines[:4])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def alert_for_run(instance: dg.DagsterInstance, run: dg.DagsterRun, ui_url: str) -> Alert:
    """Describe a failed run from its event log: its assets and partition, failed checks and steps."""
    records = instance.get_records_for_run(run_id=run.run_id).records
    assets: list[str] = []
    failed_checks: list[str] = []
    blocking = False
    errors: list[str] = []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        data = event.event_specific_data
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            key = data.asset_key.to_user_string()  # type: ignore[union-attr]
            if key not in assets:
                assets.append(key)
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION and not data.passed:  # type: ignore[union-attr]
            evaluation = data
            failed_checks.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")  # type: ignore[union-attr]
            if evaluation.blocking and evaluation.severity == dg.AssetCheckSeverity.ERROR:  # type: ignore[union-attr]
                blocking = True
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = data.error  # type: ignore[union-attr]
            while error is not None and error.cause is not None:  # the user's exception, not Dagster's wrapper
                error = error.cause
            errors.append(f"{event.step_key}: {error.message.strip() if error else 'failed'}")
        elif event.event_type == dg.DagsterEventType.RUN_FAILURE and not errors:
            errors.append(record.event_log_entry.message or "run failed")
    tags = run.tags
    partition = tags.get("dagster/partition")
    if partition is None and "dagster/asset_partition_range_start" in tags:
        partition = f"{tags['dagster/asset_partition_range_start']}..{tags.get('dagster/asset_partition_range_end')}"
    return Alert(
        kind=BLOCKING_CHECK_FAILED if blocking else RUN_FAILED,
        job=run.job_name,
        run_id=run.run_id,
        url=f"{ui_url.rstrip('/')}/runs/{run.run_id}",
        summary=_summary("\n".join(errors) or "run failed"),
        assets=assets,
        partition=partition,
        failed_checks=failed_checks,
    )


class AlertResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The alert channels (see :class:`lakehouse.settings.AlertSettings`)."""

    log_path: str | None = None
    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_ca_file: str | None = None
    smtp_user: str | None = None
    smtp_password: str | None = None
    email_from: str = "lakehouse@localhost"
    email_to: list[str] = []
    ui_url: str = "http://127.0.0.1:3000"
    timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings, **secrets: Any) -> AlertResource:
        a = settings.alerts
        return cls(
            log_path=str(a.log_path) if a.log_path else None,
            smtp_host=a.smtp_host,
            smtp_port=a.smtp_port,
            smtp_starttls=a.smtp_starttls,
            smtp_ssl=a.smtp_ssl,
            smtp_ca_file=str(a.smtp_ca_file) if a.smtp_ca_file else None,
            smtp_user=a.smtp_user,
            email_from=a.email_from,
            email_to=list(a.email_to),
            ui_url=settings.ui_url,
            **secrets,
        )

    def channels(self) -> list[str]:
        return [
            name
            for name, on in (("log", self.log_path), ("webhook", self.webhook_url), ("email", self.smtp_host))
            if on
        ]

    def send(self, alert: Alert) -> dict[str, str]:
        """Deliver to every channel; returns ``{channel: "sent" | error}``."""
        outcome: dict[str, str] = {}
        for name, deliver in (("log", self._log), ("webhook", self._webhook), ("email", self._email)):
            if name not in self.channels():
                continue
            try:
                deliver(alert)
                outcome[name] = "sent"
            except Exception as exc:  # one broken channel must not silence the others
                # the outcome is logged and stored by the sensor: no URL token, no password in it
                # (urllib, for one, quotes the whole path of a URL it cannot send)
                outcome[name] = redact(f"{type(exc).__name__}: {exc}", self._secrets())
        return outcome

    def _secrets(self) -> list[str | None]:
        """The values no outcome may show: the webhook URL and its path (the token), the password."""
        path = urllib.parse.urlsplit(self.webhook_url).path if self.webhook_url else None
        return [self.webhook_url, path if path and path != "/" else None, self.smtp_password]

    def _log(self, alert: Alert) -> None:
        assert self.log_path
        path = Path(self.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(alert), sort_keys=True) + "\n")

    def _webhook(self, alert: Alert) -> None:
        assert self.webhook_url
        body = json.dumps(alert.webhook_payload()).encode()
        if not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError("the webhook URL must be http(s)")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            self.webhook_url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )

        def post() -> None:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # noqa: S310
                response.read()

        def worth_retrying(exc: Exception) -> bool:  # the network, or a 5xx: not a 4xx (our request)
            return isinstance(exc, OSError) and (not isinstance(exc, urllib.error.HTTPError) or exc.code >= 500)

        try:
            retry_call(post, attempts=3, retry_on=worth_retrying, wait=lambda n, _e: 0.5 * 2**n)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"webhook answered HTTP {exc.code}") from None

    def _email(self, alert: Alert) -> None:
        assert self.smtp_host
        message = EmailMessage()
        message["Subject"] = alert.title
        message["From"] = self.email_from
        message["To"] = ", ".join(self.email_to)
        message.set_content(alert.text())
        server = f"{self.smtp_host}:{self.smtp_port}"
        login = bool(self.smtp_user or self.smtp_password)
        # verifies the server's certificate and host name, against the CA file when one is set
        # (else the system's CAs, which SSL_CERT_FILE may replace)
        context = ssl.create_default_context(cafile=self.smtp_ca_file or None)
        try:
            if self.smtp_ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.smtp_host, self.smtp_port, timeout=self.timeout_seconds, context=context
                )
            else:
                smtp = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_seconds)
        except ssl.SSLError as exc:
            raise _tls_failed(server, exc) from None
        with smtp:
            smtp.ehlo()
            if not self.smtp_ssl and (self.smtp_starttls or login):
                if smtp.has_extn("starttls"):
                    try:
                        smtp.starttls(context=context)
                    except ssl.SSLError as exc:
                        raise _tls_failed(server, exc) from None
                    smtp.ehlo()
                elif login:
                    # never hand the password to a plain connection (anyone on the path reads it)
                    raise AlertDeliveryError(
                        f"SMTP server {server} does not offer STARTTLS: refusing to log in as "
                        f"{self.smtp_user or '-'} over a plain connection; use SMTPS "
                        "(LAKEHOUSE_ALERT_SMTP_SSL=true, usually port 465), a server with STARTTLS, "
                        "or a relay without a login"
                    )
            if login:
                smtp.login(self.smtp_user or "", self.smtp_password or "")
            smtp.send_message(message)


def _tls_failed(server: str, exc: ssl.SSLError) -> AlertDeliveryError:
    """A TLS handshake with the SMTP server failed (most often: a certificate nobody trusts)."""
    reason = getattr(exc, "verify_message", None) or exc.reason or type(exc).__name__
    what = "certificate verify failed: " if isinstance(exc, ssl.SSLCertVerificationError) else ""
    return AlertDeliveryError(
        f"TLS to SMTP server {server} failed ({what}{reason}); nothing was sent. If the server's "
        "certificate is signed by a private CA, set LAKEHOUSE_ALERT_SMTP_CA_FILE to that CA's PEM file"
    )
