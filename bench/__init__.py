"""Benchmarks: each figure is a median of several runs and a ratio to a baseline measured in the
same run (these machines are noisy, so absolute times are reported but never asserted)."""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Figure", "median_time", "scoped_environ"]


@contextlib.contextmanager
def scoped_environ(**values: str) -> Iterator[None]:
    """Set environment variables for one in-process benchmark and put the old ones back, so a
    figure never inherits the lake, format or instance of the one before it."""
    from lakehouse.settings import scoped_environ as scoped

    with scoped(values, keep=("LAKEHOUSE_HOME", "LAKEHOUSE_TABLE_FORMAT", "DAGSTER_HOME")):
        yield


def median_time(fn: Callable[[], Any], *, repeat: int = 5, setup: Callable[[], Any] | None = None) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs (``setup`` runs untimed before each)."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@dataclass
class Figure:
    """One benchmark figure: the measured value, its baseline, and the goal for the ratio."""

    name: str
    seconds: float
    baseline_name: str
    baseline_seconds: float
    goal: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.seconds / self.baseline_seconds if self.baseline_seconds else float("inf")

    def line(self) -> str:
        return (
            f"{self.name:<55} {self.seconds * 1000:9.1f} ms  vs {self.baseline_name:<35} "
            f"{self.baseline_seconds * 1000:9.1f} ms  ratio {self.ratio:6.2f}  (goal {self.goal})"
        )
