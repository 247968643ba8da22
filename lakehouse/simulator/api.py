"""A small local product-catalog API, as a real HTTP server on 127.0.0.1.

``GET /products?page=N&page_size=M[&updated_since=ISO][&as_of=YYYY-MM-DD]`` returns
``{"data": [...], "page": N, "total": T}`` with each product's latest version as of the end of
``as_of`` (default: the last simulated day), ordered by ``updated_at, product_id``. It needs the
``X-API-Key`` header, and it misbehaves on purpose like real APIs do: every ``fail_every``-th
request is answered 429 (with ``Retry-After``) or 503, deterministically.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ProductApi", "serve_products"]


@dataclass
class ProductApi:
    """The catalog history (every version of every product) and the API's behaviour."""

    versions: list[dict[str, Any]]
    api_key: str
    fail_every: int = 4
    retry_after: str = "0"
    requests: int = 0
    failures: int = 0
    log: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def catalog(self, as_of: str | None, since: str | None) -> list[dict[str, Any]]:
        last = max(v["updated_at"] for v in self.versions) if self.versions else ""
        cutoff = f"{as_of}T23:59:59Z" if as_of else last
        latest: dict[int, dict[str, Any]] = {}
        for version in self.versions:  # versions are sorted by updated_at
            if version["updated_at"] <= cutoff:
                latest[version["product_id"]] = version
        rows = [v for v in latest.values() if since is None or v["updated_at"] > _normalise(since)]
        return sorted(rows, key=lambda v: (v["updated_at"], v["product_id"]))


def _normalise(ts: str) -> str:
    """ISO timestamps from clients (``+00:00`` or ``Z``) in the API's own ``...Z`` form."""
    parsed = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _handler(api: ProductApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: keep a log in memory
            api.log.append(format % args)

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            with api.lock:
                api.requests += 1
                number = api.requests
            if url.path != "/products":
                self._send(404, {"error": "not found"})
                return
            if self.headers.get("X-API-Key") != api.api_key:
                self._send(401, {"error": "missing or wrong X-API-Key"})
                return
            if api.fail_every and number % api.fail_every == 0:
                api.failures += 1
                if (number // api.fail_every) % 2:
                    self._send(
                        429, {"error": "slow down"}, {"Retry-After": api.retry_after, "X-RateLimit-Remaining": "0"}
                    )
                else:
                    self._send(503, {"error": "try again"})
                return
            try:
                page = int(query.get("page", "1"))
                size = min(500, int(query.get("page_size", "100")))
                rows = api.catalog(query.get("as_of"), query.get("updated_since"))
            except ValueError as exc:
                self._send(400, {"error": str(exc)})
                return
            chunk = rows[(page - 1) * size : page * size]
            self._send(200, {"data": chunk, "page": page, "total": len(rows)}, {"X-RateLimit-Remaining": "100"})

    return Handler


@contextmanager
def serve_products(api: ProductApi, port: int = 0) -> Iterator[str]:
    """Serve ``api`` on 127.0.0.1 (a free port by default); yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(api))
    thread = threading.Thread(target=server.serve_forever, name="product-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
