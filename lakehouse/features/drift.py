"""Feature drift: the population stability index (PSI) of each feature against the previous window.

``PSI = sum over bins (a - e) * ln(a / e)``, with ``e`` and ``a`` the shares of the reference
and current rows in each bin. Numeric features are binned at the reference's deciles, booleans
and strings by value; nulls are a bin of their own, so a feature that starts arriving empty
drifts too. Rule of thumb: below 0.1 stable, 0.1-0.25 moderate, above 0.25 a real shift.

A feature is only judged when both windows hold enough rows and its aggregation window is
complete (a 30-day count grows for the first 30 days of a lake: that is not drift).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from lakehouse.features.spec import FeatureView

__all__ = ["DRIFT_CHECK", "DriftReport", "FeatureDrift", "evaluate_drift", "psi"]

DRIFT_CHECK = "feature_drift"
_EPSILON = 1e-4

Status = Literal["stable", "drift", "warming_up", "too_few_rows"]


def _shares(labels: pl.Series) -> dict[object, float]:
    total = labels.len()
    return {value: count / total for value, count in labels.value_counts().iter_rows()}


def psi(reference: pl.Series, current: pl.Series, *, bins: int = 10) -> float:
    """PSI of ``current`` against ``reference`` (0.0 when identical; grows with the shift).

    Raises:
        ValueError: when either series is empty.
    """
    if reference.len() == 0 or current.len() == 0:
        raise ValueError("PSI needs at least one value in each window")
    if reference.dtype.is_numeric():
        ref = reference.cast(pl.Float64)
        values = ref.drop_nulls().drop_nans()
        edges = (
            sorted({float(values.quantile(i / bins, "linear") or 0.0) for i in range(1, bins)}) if values.len() else []
        )
        breaks = pl.Series(edges, dtype=pl.Float64)

        def label(series: pl.Series) -> pl.Series:
            s = series.cast(pl.Float64)
            index = breaks.search_sorted(s.fill_null(0.0), side="left").cast(pl.Int64)
            return pl.select(pl.when(s.is_null()).then(-1).otherwise(index)).to_series()

        expected, actual = _shares(label(reference)), _shares(label(current))
    else:
        expected = _shares(reference.cast(pl.String).fill_null("\x00null"))
        actual = _shares(current.cast(pl.String).fill_null("\x00null"))
    total = 0.0
    for bin_ in set(expected) | set(actual):
        e = max(expected.get(bin_, 0.0), _EPSILON)
        a = max(actual.get(bin_, 0.0), _EPSILON)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    status: Status
    psi: float | None = None
    reference_rows: int = 0
    current_rows: int = 0


@dataclass
class DriftReport:
    """The drift of every feature of one view on one day against the day before."""

    view: str
    day: dt.date
    threshold: float
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.status == "drift"]

    @property
    def judged(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.psi is not None]


def evaluate_drift(
    view: FeatureView,
    reference: pl.DataFrame,
    current: pl.DataFrame,
    *,
    day: dt.date,
    first_day: dt.date,
) -> DriftReport:
    """PSI of each feature of ``current`` (day ``day``) against ``reference`` (the day before);
    ``first_day`` is the lake's first partition (windows before it are incomplete)."""
    report = DriftReport(view=view.name, day=day, threshold=view.drift_threshold)
    for feature in view.features:
        window = feature.window_days or view.lookback_days
        n_ref, n_cur = reference.height, current.height
        if (day - first_day).days < window:
            report.features.append(FeatureDrift(feature.name, "warming_up", None, n_ref, n_cur))
            continue
        if n_ref < view.drift_min_rows or n_cur < view.drift_min_rows:
            report.features.append(FeatureDrift(feature.name, "too_few_rows", None, n_ref, n_cur))
            continue
        value = psi(reference.get_column(feature.name), current.get_column(feature.name))
        status: Status = "drift" if value > view.drift_threshold else "stable"
        report.features.append(FeatureDrift(feature.name, status, round(value, 4), n_ref, n_cur))
    return report
