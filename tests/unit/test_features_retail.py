"""The retail training-set labels: reorders, non-reorders and censored rows."""

import datetime as dt

import polars as pl

from assets.features.training import LABEL, reorder_labels

UTC = dt.UTC


def test_a_label_is_known_only_once_its_30_days_are_over():
    ts = [
        dt.datetime(2024, 1, 1, 10, tzinfo=UTC),  # customer 1: orders again on day 20 -> True
        dt.datetime(2024, 1, 20, 10, tzinfo=UTC),  # then not for 41 days -> False
        dt.datetime(2024, 3, 1, 9, tzinfo=UTC),  # the last order, 2 days before the data ends -> unknown
        dt.datetime(2024, 1, 5, 8, tzinfo=UTC),  # customer 2: never again, and 30 days have passed -> False
        dt.datetime(2024, 2, 10, 8, tzinfo=UTC),  # customer 3: reorders exactly 30 days later -> True
        dt.datetime(2024, 3, 11, 8, tzinfo=UTC),  # ...and that one is too recent to know
    ]
    orders = pl.DataFrame(
        {
            "order_id": [1, 2, 3, 4, 5, 6],
            "customer_id": [1, 1, 1, 2, 3, 3],
            "order_ts": ts,
            "order_date": [t.date() for t in ts],
        }
    )
    rows = reorder_labels(orders)
    assert rows.columns == ["order_id", "customer_id", "event_timestamp", LABEL]
    assert rows.get_column(LABEL).to_list() == [True, False, None, False, True, None]
    assert rows.get_column("event_timestamp").to_list() == ts
    assert reorder_labels(orders.clear()).columns == rows.columns
