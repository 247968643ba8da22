"""The webhook channel retries what a second attempt may fix (the network, a 5xx) and nothing else
(a 4xx is our request), against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lakehouse.alerts import Alert, AlertResource


@contextmanager
def answering(*codes: int) -> Iterator[tuple[str, list[int]]]:
    """A server answering each POST with the next of ``codes`` (the last one repeats)."""
    seen: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            code = codes[min(len(seen), len(codes) - 1)]
            seen.append(code)
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T0/B0/token-xyz", seen
    finally:
        server.shutdown()
        server.server_close()


ALERT = Alert(kind="run_failed", job="daily", run_id="r" * 36, url="http://127.0.0.1:3000", summary="boom")


def test_a_5xx_is_retried_until_the_webhook_takes_it():
    with answering(503, 502, 200) as (url, seen):
        assert AlertResource(webhook_url=url).send(ALERT) == {"webhook": "sent"}
    assert seen == [503, 502, 200]


def test_a_4xx_is_not_retried_and_the_token_is_not_shown():
    with answering(404) as (url, seen):
        outcome = AlertResource(webhook_url=url).send(ALERT)
    assert seen == [404]
    assert outcome["webhook"] == "RuntimeError: webhook answered HTTP 404"
    assert "token-xyz" not in outcome["webhook"]


def test_a_webhook_that_keeps_failing_gives_up_after_three_attempts():
    with answering(500) as (url, seen):
        outcome = AlertResource(webhook_url=url).send(ALERT)
    assert seen == [500, 500, 500]
    assert outcome["webhook"] == "RuntimeError: webhook answered HTTP 500"
