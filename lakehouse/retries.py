"""Retry what is worth retrying: transient storage errors (a reset connection, a timeout, a 503
from S3, a lost commit race) make the step ask Dagster for a retry with exponential backoff;
everything else (bad data, a missing bucket, a schema conflict, a bug) fails at once, because
running it again would fail the same way. A retried partition write is safe: it replaces
exactly the partitions of the step.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator

import dagster as dg

from lakehouse.exceptions import LakehouseError

__all__ = ["MAX_RETRIES", "backoff_seconds", "is_transient", "transient_retries"]

MAX_RETRIES = 3
_TRANSIENT_TYPES = {
    "CommitFailedError",  # delta-rs: another writer won the version
    "CommitFailedException",  # pyiceberg: the catalog's optimistic commit lost
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


def backoff_seconds(attempt: int, *, base: float = 1.0, cap: float = 30.0) -> float:
    """1, 2, 4, ... seconds, capped."""
    return float(min(cap, base * 2**attempt))


@contextlib.contextmanager
def transient_retries(attempt: int = 0, max_retries: int = MAX_RETRIES) -> Iterator[None]:
    """Turn a transient error inside the block into ``dg.RetryRequested`` (with backoff)."""
    try:
        yield
    except dg.RetryRequested:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise dg.RetryRequested(max_retries=max_retries, seconds_to_wait=backoff_seconds(attempt)) from exc
        raise
