"""The one retry loop (``retry_call``) and its backoff: what is retried, how often, how long it waits."""

import pytest

from lakehouse.retries import backoff_seconds, retry_call


class Flaky:
    """Fails with ``errors`` in turn, then returns "done"; counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_retries_what_retry_on_accepts_waiting_and_reporting_before_each_new_attempt():
    fn, slept, seen = Flaky(ConnectionError("a"), TimeoutError("b")), [], []
    result = retry_call(
        fn,
        attempts=5,
        wait=lambda attempt, error: 10.0 * (attempt + 1),
        sleep=slept.append,
        on_retry=lambda attempt, error, seconds: seen.append((attempt, type(error).__name__, seconds)),
    )
    assert (result, fn.calls) == ("done", 3)
    assert slept == [10.0, 20.0]
    assert seen == [(0, "ConnectionError", 10.0), (1, "TimeoutError", 20.0)]


def test_an_error_retry_on_refuses_propagates_at_once():
    fn, slept = Flaky(ValueError("bad data")), []
    with pytest.raises(ValueError, match="bad data"):
        retry_call(fn, attempts=5, sleep=slept.append)  # default policy: is_transient
    assert (fn.calls, slept) == (1, [])


def test_the_last_attempts_error_propagates_unchanged():
    fn, slept = Flaky(*[ConnectionError(f"try {i}") for i in range(9)]), []
    with pytest.raises(ConnectionError, match="try 2"):
        retry_call(fn, attempts=3, wait=lambda attempt, error: 0.0, sleep=slept.append)
    assert (fn.calls, len(slept)) == (3, 2)
    with pytest.raises(ValueError, match="at least one attempt"):
        retry_call(fn, attempts=0)


def test_backoff_doubles_up_to_the_cap_and_jitter_stays_within_its_band():
    assert [backoff_seconds(n, base=0.5, cap=3.0) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittered = [backoff_seconds(2, base=1.0, cap=30.0, jitter=0.5) for _ in range(200)]
    assert all(2.0 <= s <= 6.0 for s in jittered) and len(set(jittered)) > 1
