"""Retry what is worth retrying: transient storage errors (a reset connection, a timeout, a 503
from S3, a lost commit race) make the step ask Dagster for a retry with exponential backoff;
everything else (bad data, a missing bucket, a schema conflict, a bug) fails at once, because
running it again would fail the same way. A retried partition write is safe: it replaces
exactly the partitions of the step.

Inside a step, :func:`retry_call` is the one retry loop of the project (table commits that lost
a race, HTTP requests): the policy (what to retry, how long to wait) is its arguments, so each
caller states its own and none re-implements the loop.
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from lakehouse.exceptions import LakehouseError

__all__ = ["MAX_RETRIES", "backoff_seconds", "is_transient", "retry_call", "transient_retries"]

T = TypeVar("T")

MAX_RETRIES = 3
_TRANSIENT_TYPES = {
    "CommitFailedError",  # delta-rs: another writer won the version
    "CommitFailedException",  # pyiceberg: the catalog's optimistic commit lost
    "StalePlanError",  # lakehouse.tables: the table moved on while a write was planned (retried there first)
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ThrottlingException",
}
_TRANSIENT_MESSAGE = re.compile(
    r"connection (was )?(reset|refused|closed|aborted)|broken pipe|timed? ?out|slow ?down|"
    r"503|service unavailable|internal ?error|temporar(il)?y unavailable|too many requests|network_connection",
    re.IGNORECASE,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_transient(exc: BaseException) -> bool:
    """True for errors that a second attempt may not meet (see the module docstring)."""
    for error in _chain(exc):
        if isinstance(error, LakehouseError):
            return False  # our own errors are diagnoses (missing bucket, bad spec): never transient
        if isinstance(error, (ConnectionError, TimeoutError, socket.timeout)):
            return True
        if type(error).__name__ in _TRANSIENT_TYPES:
            return True
        if isinstance(error, OSError) and _TRANSIENT_MESSAGE.search(str(error)):
            return True  # object_store / pyarrow report S3 trouble as OSError with a message
    return False


def backoff_seconds(attempt: int, *, base: float = 1.0, cap: float = 30.0, jitter: float = 0.0) -> float:
    """``base`` x 1, 2, 4, ... seconds, capped; with ``jitter`` j, times a random factor in
    [1 - j, 1 + j], so that writers which lost the same race do not all come back at once."""
    seconds = float(min(cap, base * 2**attempt))
    if jitter:
        seconds *= random.uniform(1.0 - jitter, 1.0 + jitter)  # noqa: S311 - jitter, not secrecy
    return seconds


def _default_wait(attempt: int, error: Exception) -> float:
    return backoff_seconds(attempt)


def retry_call(
    fn: Callable[[], T],
    *,
    attempts: int,
    retry_on: Callable[[Exception], bool] = is_transient,
    wait: Callable[[int, Exception], float] = _default_wait,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, Exception, float], None] | None = None,
) -> T:
    """Call ``fn`` until it returns, at most ``attempts`` times in all.

    An error for which ``retry_on`` is false, or the error of the last attempt, propagates as it
    is. Before the next attempt: ``on_retry(attempt, error, seconds)`` (counters, logs) and
    ``sleep(wait(attempt, error))``; ``attempt`` counts from 0. ``fn`` is the whole attempt, not
    only its last step: whatever it read before failing may be stale, so it must read again
    (a table write re-reads the table and re-plans; see ``TableStore._retry_lost_races``).
    """
    if attempts < 1:
        raise ValueError(f"retry_call needs at least one attempt, got {attempts}")
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as error:
            if attempt == attempts - 1 or not retry_on(error):
                raise
            seconds = wait(attempt, error)
            if on_retry is not None:
                on_retry(attempt, error, seconds)
            sleep(seconds)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def transient_retries(attempt: int = 0, max_retries: int = MAX_RETRIES) -> Iterator[None]:
    """Turn a transient error inside the block into ``dg.RetryRequested`` (with backoff)."""
    import dagster as dg  # here, not at the top: the table layer and readers use this module without Dagster

    try:
        yield
    except dg.RetryRequested:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise dg.RetryRequested(max_retries=max_retries, seconds_to_wait=backoff_seconds(attempt)) from exc
        raise
