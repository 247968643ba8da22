"""Training set: will a customer order again within 30 days of an order?

One row per silver order (the entity row: ``customer_id`` at ``event_timestamp = order_ts``),
labelled from the orders that follow it, with every customer feature as of that moment (a
point-in-time join: never a value computed from later events).
"""

import datetime as dt

import polars as pl

from assets.features.retail import CUSTOMER_BASKET, CUSTOMER_RFM, CUSTOMER_WEB
from assets.retail.silver import BY_NAME
from lakehouse.features.spec import EVENT_TIMESTAMP
from lakehouse.metadata import Column
from lakehouse.naming import TableRef
from lakehouse.tables import Lake

ORDERS = BY_NAME["orders"].ref
TRAINING_SET = TableRef("gold", "features", "customer_reorder_training")
LABEL = "reordered_within_30d"
HORIZON = dt.timedelta(days=30)
FEATURES = [CUSTOMER_RFM.name, CUSTOMER_BASKET.name, CUSTOMER_WEB.name]

LABEL_COLUMNS = [
    Column("order_id", "int64", "The order this row is about.", nullable=False, lineage=[(ORDERS.path, "order_id")]),
    Column("customer_id", "int64", "Who placed it.", nullable=False, lineage=[(ORDERS.path, "customer_id")]),
    Column(
        EVENT_TIMESTAMP,
        "timestamp[us, UTC]",
        "When it was placed (order_ts): features are taken as of this moment.",
        nullable=False,
        lineage=[(ORDERS.path, "order_ts")],
    ),
    Column(
        LABEL,
        "bool",
        "The label: the customer placed another order within 30 days after this one. Null while the 30 days "
        "are not over yet in the data (censored): leave those rows out of training.",
        lineage=[(ORDERS.path, "order_ts"), (ORDERS.path, "customer_id")],
    ),
]


def reorder_labels(orders: pl.DataFrame) -> pl.DataFrame:
    """Entity rows and labels from orders (``order_id``, ``customer_id``, ``order_ts``, ``order_date``).

    The data is complete up to the midnight after the newest order day; an order less than 30
    days before that has an unknown label unless the customer already ordered again.
    """
    if orders.height == 0:
        return pl.DataFrame(
            schema={
                "order_id": pl.Int64,
                "customer_id": pl.Int64,
                EVENT_TIMESTAMP: pl.Datetime("us", "UTC"),
                LABEL: pl.Boolean,
            }
        )
    newest = orders.get_column("order_date").max()
    assert isinstance(newest, dt.date)
    observed_until = dt.datetime(newest.year, newest.month, newest.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    ordered = orders.sort("customer_id", "order_ts", "order_id").with_columns(
        pl.col("order_ts").shift(-1).over("customer_id").alias("next_order_ts")
    )
    return ordered.select(
        "order_id",
        "customer_id",
        pl.col("order_ts").alias(EVENT_TIMESTAMP),
        pl.when(pl.col("next_order_ts").is_not_null() & (pl.col("next_order_ts") - pl.col("order_ts") <= HORIZON))
        .then(True)
        .when(pl.col("order_ts") + HORIZON <= observed_until)
        .then(False)
        .otherwise(None)
        .alias(LABEL),
    ).sort("order_id")


def labels_from_lake(lake: Lake) -> pl.DataFrame:
    orders = lake.existing_store(ORDERS).read(ORDERS, columns=["order_id", "customer_id", "order_ts", "order_date"])
    return reorder_labels(orders.collect())


__all__ = ["FEATURES", "LABEL", "LABEL_COLUMNS", "TRAINING_SET", "labels_from_lake", "reorder_labels"]
