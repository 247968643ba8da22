"""Paginated REST APIs: page/offset and cursor pagination, exponential backoff with jitter on
429/5xx honouring ``Retry-After``, an API key from an environment variable (sent as a header,
never logged), and incremental fetching from a high-water mark.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import os
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
import requests

from lakehouse.exceptions import LakehouseError
from lakehouse.ingest.json_reader import flatten
from lakehouse.ingest.result import ReadResult, quarantine_frame
from lakehouse.retries import backoff_seconds, retry_call

__all__ = ["FetchStats", "RestError", "RestOptions", "fetch", "read_rest"]

_RETRYABLE = {429, 500, 502, 503, 504}


class RestError(LakehouseError):
    """The API could not be read (after retries); the message names the URL, never the key."""


@dataclass(frozen=True)
class RestOptions:
    """How to page through one endpoint."""

    url: str
    pagination: Literal["page", "offset", "cursor", "none"] = "page"
    records_path: str = "data"
    page_param: str = "page"
    offset_param: str = "offset"
    size_param: str = "page_size"
    page_size: int = 100
    first_page: int = 1
    cursor_param: str = "cursor"
    next_cursor_path: str = "next_cursor"
    api_key_env: str | None = None
    api_key_header: str = "X-API-Key"
    incremental_field: str | None = None
    since_param: str = "updated_since"
    params: Mapping[str, str] = field(default_factory=dict)
    max_retries: int = 6
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 30.0
    max_pages: int = 10_000


@dataclass
class FetchStats:
    """Request and quota counters, reported as metadata."""

    requests: int = 0
    pages: int = 0
    retries: int = 0
    throttled: int = 0  # 429 answers
    server_errors: int = 0  # 5xx answers
    waited_seconds: float = 0.0
    rate_limit_remaining: str | None = None

    def as_metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in self.__dict__.items() if v is not None}
        out["waited_seconds"] = round(self.waited_seconds, 3)
        return out


def _dig(document: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if not isinstance(document, dict):
            return None
        document = document.get(part)
    return document


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, (parsed - dt.datetime.now(dt.UTC)).total_seconds())


def _safe_url(url: str) -> str:
    """The URL without its query string (which could carry a token)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class _RetryableAnswer(Exception):
    """One request that may succeed if asked again (no connection, 429, 5xx). ``final`` is the
    message of the :class:`RestError` raised when no attempt is left; ``hint`` the server's wait."""

    def __init__(self, final: str, *, status: int | None = None, hint: float | None = None) -> None:
        super().__init__(final)
        self.final, self.status, self.hint = final, status, hint


def _get(
    session: requests.Session,
    url: str,
    params: Mapping[str, Any],
    headers: Mapping[str, str],
    options: RestOptions,
    stats: FetchStats,
    sleep: Callable[[float], None],
) -> Any:
    attempts = 0

    def once() -> Any:
        nonlocal attempts
        attempts += 1
        stats.requests += 1
        try:
            response = session.get(url, params=dict(params), headers=dict(headers), timeout=options.timeout_seconds)
        except requests.RequestException as exc:
            raise _RetryableAnswer(
                f"GET {_safe_url(url)} failed after {attempts} attempt(s): {type(exc).__name__}"
            ) from None
        remaining = response.headers.get("X-RateLimit-Remaining")
        if remaining is not None:
            stats.rate_limit_remaining = remaining
        if response.status_code < 400:
            try:
                return response.json()
            except ValueError:
                raise RestError(
                    f"GET {_safe_url(url)} answered {response.status_code} with a body that is not JSON"
                ) from None
        message = (
            f"GET {_safe_url(url)} answered {response.status_code} after {attempts} attempt(s): {response.text[:200]}"
        )
        if response.status_code not in _RETRYABLE:
            raise RestError(message)
        raise _RetryableAnswer(
            message, status=response.status_code, hint=_retry_after(response.headers.get("Retry-After"))
        )

    def wait(attempt: int, error: Exception) -> float:
        backoff = backoff_seconds(attempt, base=options.backoff_seconds, cap=options.max_backoff_seconds, jitter=0.5)
        hint = error.hint if isinstance(error, _RetryableAnswer) else None
        return max(hint, backoff) if hint is not None else backoff  # a Retry-After is a floor, never shortened

    def count(attempt: int, error: Exception, seconds: float) -> None:
        status = error.status if isinstance(error, _RetryableAnswer) else None
        if status == 429:
            stats.throttled += 1
        elif status is not None:
            stats.server_errors += 1
        stats.retries += 1
        stats.waited_seconds += seconds

    try:
        return retry_call(
            once,
            attempts=options.max_retries + 1,
            retry_on=lambda error: isinstance(error, _RetryableAnswer),
            wait=wait,
            sleep=sleep,
            on_retry=count,
        )
    except _RetryableAnswer as exhausted:
        raise RestError(exhausted.final) from None


def fetch(
    options: RestOptions,
    *,
    since: Any = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    env: Mapping[str, str] | None = None,
) -> tuple[list[tuple[int, dict[str, Any], str]], FetchStats]:
    """Every record of the endpoint (only those changed after ``since`` when incremental).

    Returns ``[(page number, record, page url)]`` and the counters.
    """
    env = os.environ if env is None else env
    headers = {"Accept": "application/json"}
    if options.api_key_env:
        key = env.get(options.api_key_env)
        if not key:
            raise RestError(f"the API key variable {options.api_key_env} is not set")
        headers[options.api_key_header] = key
    params: dict[str, Any] = {**options.params, options.size_param: options.page_size}
    if since is not None and options.incremental_field:
        params[options.since_param] = since.isoformat() if hasattr(since, "isoformat") else str(since)
    session = session or requests.Session()
    stats = FetchStats()
    out: list[tuple[int, dict[str, Any], str]] = []
    page, offset, cursor = options.first_page, 0, None
    for number in range(1, options.max_pages + 1):
        call = dict(params)
        if options.pagination == "page":
            call[options.page_param] = page
        elif options.pagination == "offset":
            call[options.offset_param] = offset
        elif options.pagination == "cursor" and cursor is not None:
            call[options.cursor_param] = cursor
        body = _get(session, options.url, call, headers, options, stats, sleep)
        stats.pages += 1
        records = _dig(body, options.records_path) if options.records_path else body
        if not isinstance(records, list):
            raise RestError(f"GET {_safe_url(options.url)}: no list of records at {options.records_path!r}")
        # the resource, not the host that served it: stable across environments and re-runs
        page_url = f"{urllib.parse.urlsplit(options.url).path}#page={number}"
        out.extend((number, r, page_url) for r in records)
        if options.pagination == "none" or not records:
            break
        if options.pagination == "cursor":
            cursor = _dig(body, options.next_cursor_path)
            if not cursor:
                break
        elif len(records) < options.page_size:
            break
        page += 1
        offset += len(records)
    return out, stats


def read_rest(
    options: RestOptions,
    *,
    since: Any = None,
    fetched_at: dt.datetime | None = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[ReadResult, FetchStats]:
    """Fetch and flatten: one row per record with ``_raw`` (the record as JSON), ``_fetched_at``,
    ``_source_file`` (the page URL) and ``_source_line`` (the page number)."""
    fetched_at = fetched_at or dt.datetime.now(dt.UTC)
    records, stats = fetch(options, since=since, session=session, sleep=sleep)
    good = [r for _, r, _ in records if isinstance(r, dict)]
    bad = [
        (url, n, json.dumps(r), f"expected a JSON object, found {type(r).__name__}")
        for n, r, url in records
        if not isinstance(r, dict)
    ]
    if good:
        frame = flatten(pl.from_dicts(good, infer_schema_length=None))
        frame = frame.with_columns(
            pl.Series("_raw", [json.dumps(r, sort_keys=True) for r in good], dtype=pl.String),
            pl.lit(fetched_at, dtype=pl.Datetime("us", "UTC")).alias("_fetched_at"),
            pl.Series("_source_file", [u for _, r, u in records if isinstance(r, dict)], dtype=pl.String),
            pl.Series("_source_line", [n for n, r, _ in records if isinstance(r, dict)], dtype=pl.Int64),
        )
    else:
        frame = pl.DataFrame()
    info = {"parser": "rest", "pages": stats.pages, "since": str(since) if since is not None else None}
    return ReadResult(rows=frame, quarantine=quarantine_frame(bad), info=info), stats
