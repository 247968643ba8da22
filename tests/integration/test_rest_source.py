"""The REST reader against a real HTTP server on 127.0.0.1 that throttles and fails before answering."""

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lakehouse.ingest.rest import RestError, RestOptions, fetch, read_rest
from lakehouse.simulator.api import ProductApi, serve_products

VERSIONS = [
    {"product_id": i, "name": f"p{i}", "price": 10 + i, "updated_at": f"2024-01-{1 + i // 10:02d}T00:00:{i % 60:02d}Z"}
    for i in range(1, 31)
]


class Waits(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_page_pagination_with_429_and_503_then_incremental(monkeypatch):
    monkeypatch.setenv("SHOP_KEY", "s3cr3t-key")
    api = ProductApi(
        versions=sorted(VERSIONS, key=lambda v: v["updated_at"]), api_key="s3cr3t-key", fail_every=2, retry_after="3"
    )
    with serve_products(api) as url:
        options = RestOptions(
            url=f"{url}/products",
            page_size=7,
            api_key_env="SHOP_KEY",
            incremental_field="updated_at",
            backoff_seconds=0.01,
        )
        waits = Waits()
        records, stats = fetch(options, sleep=waits)
        assert [r["product_id"] for _, r, _ in records] == sorted(v["product_id"] for v in VERSIONS)
        assert stats.pages == 5  # 7+7+7+7+2
        assert stats.throttled + stats.server_errors == stats.retries > 0
        assert stats.throttled > 0 and stats.server_errors > 0
        assert stats.requests == stats.pages + stats.retries
        assert max(waits) >= 3.0  # Retry-After honoured on the 429s
        assert stats.rate_limit_remaining in ("0", "100")
        # second run: only what changed after the high-water mark
        since = max(r["updated_at"] for _, r, _ in records)
        api.versions.append({**VERSIONS[0], "price": 99, "updated_at": "2024-02-01T00:00:00Z"})
        again, stats2 = fetch(options, since=since, sleep=Waits())
        assert [(r["product_id"], r["price"]) for _, r, _ in again] == [(1, 99)]
        assert stats2.pages == 1
    assert not any("s3cr3t-key" in line for line in api.log)  # the key is a header: never in URLs or logs


def test_wrong_key_and_missing_key_are_clear_errors(monkeypatch):
    api = ProductApi(versions=VERSIONS, api_key="right", fail_every=0)
    with serve_products(api) as url:
        monkeypatch.setenv("SHOP_KEY", "K3Y-value-123")
        with pytest.raises(RestError, match=r"GET http://127.0.0.1:\d+/products answered 401") as error:
            fetch(RestOptions(url=f"{url}/products?token=abc", api_key_env="SHOP_KEY"))
        assert "K3Y-value-123" not in str(error.value) and "token=abc" not in str(error.value)
        monkeypatch.delenv("SHOP_KEY")
        with pytest.raises(RestError, match="the API key variable SHOP_KEY is not set"):
            fetch(RestOptions(url=f"{url}/products", api_key_env="SHOP_KEY"))


def test_gives_up_after_max_retries_with_the_status():
    api = ProductApi(versions=VERSIONS, api_key="k", fail_every=1)  # every request fails
    with serve_products(api) as url, pytest.raises(RestError, match=r"answered (429|503) after 3 attempt\(s\)"):
        fetch(
            RestOptions(url=f"{url}/products", api_key_env="K", max_retries=2, backoff_seconds=0.0),
            env={"K": "k"},
            sleep=Waits(),
        )


@contextmanager
def cursor_server(records: list[dict], page_size: int) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            start = int(query.get("cursor", "0"))
            chunk = records[start : start + page_size]
            nxt = start + page_size if start + page_size < len(records) else None
            body = json.dumps({"items": chunk, "paging": {"next": str(nxt) if nxt is not None else None}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/events"
    finally:
        server.shutdown()
        server.server_close()


def test_cursor_pagination_and_rows_keep_the_raw_record():
    records = [{"id": i, "payload": {"k": i}} for i in range(23)]
    with cursor_server(records, 10) as url:
        options = RestOptions(url=url, pagination="cursor", records_path="items", next_cursor_path="paging.next")
        result, stats = read_rest(options)
    assert stats.pages == 3
    assert result.rows.get_column("id").to_list() == list(range(23))
    assert result.rows.get_column("payload__k").to_list() == list(range(23))
    assert json.loads(result.rows.get_column("_raw")[5]) == {"id": 5, "payload": {"k": 5}}
    assert result.rows.get_column("_source_line").to_list() == [1] * 10 + [2] * 10 + [3] * 3
    assert result.rows.get_column("_source_file")[0] == "/events#page=1"
