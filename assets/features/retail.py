"""Retail feature views: entities, declarations and the pure functions that compute them.

Every function takes the sources already read over the view's look-back (by table name) and the
days to compute, and returns one row per entity and day: the join key, ``feature_date`` and the
features. A row for day D only uses events of days up to D; the framework stamps it with
``event_timestamp = D+1 00:00 UTC`` (see ``lakehouse.features.windows``).
"""

import datetime as dt
from collections.abc import Mapping, Sequence

import polars as pl

from assets.retail.gold import DAILY_SALES
from assets.retail.silver import BY_NAME
from lakehouse.features import Entity, Feature, FeatureSource, FeatureView
from lakehouse.features.spec import FeatureDtype
from lakehouse.features.windows import trailing_windows
from lakehouse.naming import TableRef
from spark.web_traffic import sessions_polars

OWNER = "team:ml-platform"
TTL = dt.timedelta(days=2)  # daily values; one late day is tolerated, two are stale

ORDERS, LINES = BY_NAME["orders"].ref, BY_NAME["order_lines"].ref
EVENTS, REQUESTS = BY_NAME["events"].ref, BY_NAME["web_requests"].ref

CUSTOMER = Entity("customer", "customer_id", "int64", "A retail customer (silver/retail/customers).")
PRODUCT = Entity("product", "product_id", "int64", "A product of the catalog (silver/retail/products).")
STORE = Entity("store", "store_id", "int64", "A store (silver/retail/stores).")

Inputs = Mapping[str, pl.DataFrame]


def _money(column: str) -> pl.Expr:
    """Sum decimals exactly, then hand models a float."""
    return pl.col(column).sum().cast(pl.Float64)


def _ratio(numerator: str, denominator: str) -> pl.Expr:
    return (
        pl.when(pl.col(denominator) > 0).then(pl.col(numerator).cast(pl.Float64) / pl.col(denominator)).otherwise(None)
    )


def _feature(
    name: str, dtype: FeatureDtype, description: str, window: int | None, *lineage: tuple[TableRef, str]
) -> Feature:
    return Feature(name, dtype, description, window, [(ref.path, column) for ref, column in lineage])


# -- customer RFM ------------------------------------------------------------------------------------

CUSTOMER_RFM = FeatureView(
    name="customer_rfm",
    entity=CUSTOMER,
    description="Recency, frequency and monetary value of each customer's orders over 30, 90 and 365 days.",
    features=[
        _feature(
            "recency_days",
            "int64",
            "Days from the customer's last order to feature_date (0: ordered that day); "
            "null after 365 days without an order.",
            365,
            (ORDERS, "order_date"),
        ),
        *[
            _feature(f"orders_{w}d", "int64", f"Orders placed in the last {w} days.", w, (ORDERS, "order_id"))
            for w in (30, 90, 365)
        ],
        *[
            _feature(
                f"revenue_{w}d", "float64", f"Sum of order totals of the last {w} days.", w, (ORDERS, "order_total")
            )
            for w in (30, 90, 365)
        ],
        _feature(
            "avg_order_value_365d",
            "float64",
            "revenue_365d / orders_365d; null without orders.",
            365,
            (ORDERS, "order_total"),
            (ORDERS, "order_id"),
        ),
    ],
    sources=[FeatureSource(ORDERS, ["order_id", "customer_id", "order_date", "order_total"], "order_date")],
    ttl=TTL,
    owner=OWNER,
    version=1,
    lookback_days=365,
)


def customer_rfm(inputs: Inputs, days: Sequence[dt.date]) -> pl.DataFrame:
    orders = inputs["orders"]
    windows = {w: [pl.len().alias(f"orders_{w}d"), _money("order_total").alias(f"revenue_{w}d")] for w in (30, 90, 365)}
    windows[365].append(pl.col("order_date").max().alias("last_order_date"))
    rows = trailing_windows(
        orders,
        key="customer_id",
        day="order_date",
        days=days,
        windows=windows,
        zero=[f"{m}_{w}d" for m in ("orders", "revenue") for w in (30, 90, 365)],
    )
    if rows.height == 0:
        return rows
    return rows.with_columns(
        (pl.col("feature_date") - pl.col("last_order_date")).dt.total_days().alias("recency_days"),
        _ratio("revenue_365d", "orders_365d").alias("avg_order_value_365d"),
    ).drop("last_order_date")


# -- customer basket statistics ----------------------------------------------------------------------

CUSTOMER_BASKET = FeatureView(
    name="customer_basket",
    entity=CUSTOMER,
    description="What a customer's baskets look like over the last 90 days: size, value, variety, discounts.",
    features=[
        _feature("baskets_90d", "int64", "Orders with at least one line in the last 90 days.", 90, (LINES, "order_id")),
        _feature("avg_items_per_basket_90d", "float64", "Units per order.", 90, (LINES, "quantity")),
        _feature("avg_lines_per_basket_90d", "float64", "Order lines per order.", 90, (LINES, "line_number")),
        _feature("avg_basket_value_90d", "float64", "Net amount per order.", 90, (LINES, "net_amount")),
        _feature("max_basket_value_90d", "float64", "Largest order (net amount).", 90, (LINES, "net_amount")),
        _feature("distinct_products_90d", "int64", "Different products bought.", 90, (LINES, "product_id")),
        _feature(
            "discount_share_90d",
            "float64",
            "Discount / gross amount over all lines.",
            90,
            (LINES, "discount"),
            (LINES, "gross_amount"),
        ),
    ],
    sources=[
        FeatureSource(
            LINES,
            [
                "order_id",
                "line_number",
                "order_date",
                "product_id",
                "quantity",
                "gross_amount",
                "discount",
                "net_amount",
            ],
            "order_date",
        ),
        FeatureSource(ORDERS, ["order_id", "customer_id", "order_date"], "order_date"),
    ],
    ttl=TTL,
    owner=OWNER,
    version=1,
    lookback_days=90,
)


def customer_basket(inputs: Inputs, days: Sequence[dt.date]) -> pl.DataFrame:
    # the order's customer and day (the header); lines whose header has not arrived are left out
    lines = inputs["order_lines"].drop("order_date").join(inputs["orders"], on="order_id", how="inner")
    lines = lines.with_columns(pl.col("net_amount").sum().over("order_id").alias("basket_value"))
    rows = trailing_windows(
        lines,
        key="customer_id",
        day="order_date",
        days=days,
        windows={
            90: [
                pl.col("order_id").n_unique().cast(pl.Int64).alias("baskets_90d"),
                pl.col("quantity").sum().alias("units"),
                pl.len().alias("lines"),
                _money("net_amount").alias("net"),
                pl.col("basket_value").max().cast(pl.Float64).alias("max_basket_value_90d"),
                pl.col("product_id").n_unique().cast(pl.Int64).alias("distinct_products_90d"),
                _money("discount").alias("discount"),
                _money("gross_amount").alias("gross"),
            ]
        },
        zero=["baskets_90d", "distinct_products_90d"],
    )
    if rows.height == 0:
        return rows
    return rows.with_columns(
        _ratio("units", "baskets_90d").alias("avg_items_per_basket_90d"),
        _ratio("lines", "baskets_90d").alias("avg_lines_per_basket_90d"),
        _ratio("net", "baskets_90d").alias("avg_basket_value_90d"),
        _ratio("discount", "gross").alias("discount_share_90d"),
    ).drop("units", "lines", "net", "discount", "gross")


# -- customer web activity ---------------------------------------------------------------------------

CUSTOMER_WEB = FeatureView(
    name="customer_web_activity",
    entity=CUSTOMER,
    description="A logged-in customer's clickstream over the last 7 days: sessions (30 minutes of inactivity or "
    "midnight ends one, as in spark/web_traffic.py), page views, carts, purchases and conversion.",
    features=[
        _feature("sessions_7d", "int64", "Sessions.", 7, (EVENTS, "event_ts")),
        _feature("page_views_7d", "int64", "page_view events.", 7, (EVENTS, "event_type")),
        _feature("add_to_cart_7d", "int64", "add_to_cart events.", 7, (EVENTS, "event_type")),
        _feature("purchases_7d", "int64", "purchase events.", 7, (EVENTS, "event_type")),
        _feature(
            "conversion_rate_7d",
            "float64",
            "Share of sessions with a purchase.",
            7,
            (EVENTS, "event_type"),
            (EVENTS, "event_ts"),
        ),
        _feature(
            "avg_session_minutes_7d",
            "float64",
            "Average session length (first to last event).",
            7,
            (EVENTS, "event_ts"),
        ),
        _feature("active_days_7d", "int64", "Days with at least one event.", 7, (EVENTS, "event_date")),
    ],
    sources=[
        FeatureSource(
            EVENTS, ["event_id", "event_ts", "event_date", "event_type", "customer_id", "anonymous_id"], "event_date"
        ),
    ],
    ttl=TTL,
    owner=OWNER,
    version=1,
    lookback_days=7,
)


def customer_web_activity(inputs: Inputs, days: Sequence[dt.date]) -> pl.DataFrame:
    events = inputs["events"].filter(pl.col("customer_id").is_not_null())
    sessions = sessions_polars(events).with_columns(
        pl.col("visitor").str.strip_prefix("c:").cast(pl.Int64).alias("customer_id"),
        ((pl.col("session_end") - pl.col("session_start")).dt.total_seconds() / 60).alias("minutes"),
    )
    by_session = trailing_windows(
        sessions,
        key="customer_id",
        day="traffic_date",
        days=days,
        windows={
            7: [
                pl.len().cast(pl.Int64).alias("sessions_7d"),
                (pl.col("purchases") > 0).sum().alias("converted"),
                pl.col("minutes").mean().alias("avg_session_minutes_7d"),
            ]
        },
        zero=["sessions_7d", "converted"],
    )
    by_event = trailing_windows(
        events,
        key="customer_id",
        day="event_date",
        days=days,
        windows={
            7: [
                *[
                    (pl.col("event_type") == kind).sum().cast(pl.Int64).alias(f"{name}_7d")
                    for kind, name in (
                        ("page_view", "page_views"),
                        ("add_to_cart", "add_to_cart"),
                        ("purchase", "purchases"),
                    )
                ],
                pl.col("event_date").n_unique().cast(pl.Int64).alias("active_days_7d"),
            ]
        },
        zero=["page_views_7d", "add_to_cart_7d", "purchases_7d", "active_days_7d"],
    )
    if by_event.height == 0:
        return by_event
    # sessions come from the same events, so both have the same customers and days
    rows = by_event.join(by_session, on=["customer_id", "feature_date"], how="left")
    return rows.with_columns(_ratio("converted", "sessions_7d").alias("conversion_rate_7d")).drop("converted")


# -- product popularity ------------------------------------------------------------------------------

RETURNED = ("returned", "refunded")

PRODUCT_POPULARITY = FeatureView(
    name="product_popularity",
    entity=PRODUCT,
    description="How much each product sells, is looked at and put in carts over 7 and 30 days, and how often "
    "it comes back.",
    features=[
        *[
            _feature(f"units_sold_{w}d", "int64", f"Units sold in the last {w} days.", w, (LINES, "quantity"))
            for w in (7, 30)
        ],
        *[
            _feature(
                f"orders_{w}d", "int64", f"Orders containing the product in the last {w} days.", w, (LINES, "order_id")
            )
            for w in (7, 30)
        ],
        _feature("buyers_30d", "int64", "Distinct customers who bought it.", 30, (ORDERS, "customer_id")),
        _feature("revenue_30d", "float64", "Net amount of its lines.", 30, (LINES, "net_amount")),
        _feature(
            "return_rate_30d",
            "float64",
            "Share of units sold in orders later returned or refunded "
            "(order status returned/refunded); null without sales.",
            30,
            (ORDERS, "status"),
            (LINES, "quantity"),
        ),
        _feature(
            "page_views_7d",
            "int64",
            "Human requests for its /products/{id} page.",
            7,
            (REQUESTS, "product_id"),
            (REQUESTS, "is_bot"),
        ),
        _feature("add_to_cart_7d", "int64", "Times it was added to a cart (clickstream).", 7, (EVENTS, "items")),
        _feature(
            "view_to_order_rate_7d",
            "float64",
            "orders_7d / page_views_7d; null without page views.",
            7,
            (LINES, "order_id"),
            (REQUESTS, "product_id"),
        ),
    ],
    sources=[
        FeatureSource(LINES, ["order_id", "order_date", "product_id", "quantity", "net_amount"], "order_date"),
        FeatureSource(ORDERS, ["order_id", "customer_id", "status", "order_date"], "order_date"),
        FeatureSource(REQUESTS, ["log_date", "product_id", "is_bot"], "log_date"),
        FeatureSource(EVENTS, ["event_date", "event_type", "items"], "event_date"),
    ],
    ttl=TTL,
    owner=OWNER,
    version=1,
    lookback_days=30,
)


def product_popularity(inputs: Inputs, days: Sequence[dt.date]) -> pl.DataFrame:
    orders = inputs["orders"].select("order_id", "customer_id", pl.col("status").is_in(RETURNED).alias("returned"))
    lines = (
        inputs["order_lines"].join(orders, on="order_id", how="left").with_columns(pl.col("returned").fill_null(False))
    )
    sales = trailing_windows(
        lines,
        key="product_id",
        day="order_date",
        days=days,
        windows={
            7: [
                pl.col("quantity").sum().alias("units_sold_7d"),
                pl.col("order_id").n_unique().cast(pl.Int64).alias("orders_7d"),
            ],
            30: [
                pl.col("quantity").sum().alias("units_sold_30d"),
                pl.col("order_id").n_unique().cast(pl.Int64).alias("orders_30d"),
                pl.col("customer_id").drop_nulls().n_unique().cast(pl.Int64).alias("buyers_30d"),
                _money("net_amount").alias("revenue_30d"),
                pl.col("quantity").filter(pl.col("returned")).sum().alias("returned_units"),
            ],
        },
        zero=["units_sold_7d", "orders_7d", "units_sold_30d", "orders_30d", "buyers_30d", "revenue_30d"],
    )
    views = inputs["web_requests"].filter(pl.col("product_id").is_not_null() & ~pl.col("is_bot"))
    viewed = trailing_windows(
        views,
        key="product_id",
        day="log_date",
        days=days,
        windows={7: [pl.len().cast(pl.Int64).alias("page_views_7d")]},
    )
    carts = (
        inputs["events"]
        .filter(pl.col("event_type") == "add_to_cart")
        .explode("items")
        .select("event_date", pl.col("items").struct.field("product_id").alias("product_id"))
        .drop_nulls()
    )
    carted = trailing_windows(
        carts,
        key="product_id",
        day="event_date",
        days=days,
        windows={7: [pl.len().cast(pl.Int64).alias("add_to_cart_7d")]},
    )
    keys = ["product_id", "feature_date"]
    parts = [p for p in (sales, viewed, carted) if p.height]
    if not parts:
        return pl.DataFrame()
    rows = parts[0]
    for part in parts[1:]:
        rows = rows.join(part, on=keys, how="full", coalesce=True)
    for name in (
        "units_sold_7d",
        "orders_7d",
        "units_sold_30d",
        "orders_30d",
        "buyers_30d",
        "page_views_7d",
        "add_to_cart_7d",
    ):
        rows = rows.with_columns((pl.col(name) if name in rows.columns else pl.lit(None)).fill_null(0).alias(name))
    for name in ("revenue_30d", "returned_units"):
        rows = rows.with_columns((pl.col(name) if name in rows.columns else pl.lit(None)).cast(pl.Float64).alias(name))
    return rows.with_columns(
        pl.col("revenue_30d").fill_null(0.0),
        _ratio("returned_units", "units_sold_30d").alias("return_rate_30d"),
        _ratio("orders_7d", "page_views_7d").alias("view_to_order_rate_7d"),
    ).drop("returned_units")


# -- store daily traffic -----------------------------------------------------------------------------

STORE_TRAFFIC = FeatureView(
    name="store_daily_traffic",
    entity=STORE,
    description="Each store's traffic on the day and over the last 7 days, from gold/retail/daily_sales.",
    features=[
        _feature("orders_1d", "int64", "Orders on feature_date.", 1, (DAILY_SALES, "orders")),
        _feature("customers_1d", "int64", "Distinct customers on feature_date.", 1, (DAILY_SALES, "customers")),
        _feature("revenue_1d", "float64", "Revenue on feature_date.", 1, (DAILY_SALES, "revenue")),
        _feature("orders_7d", "int64", "Orders in the last 7 days.", 7, (DAILY_SALES, "orders")),
        _feature("revenue_7d", "float64", "Revenue in the last 7 days.", 7, (DAILY_SALES, "revenue")),
        _feature(
            "avg_order_value_7d",
            "float64",
            "revenue_7d / orders_7d.",
            7,
            (DAILY_SALES, "revenue"),
            (DAILY_SALES, "orders"),
        ),
    ],
    sources=[FeatureSource(DAILY_SALES, ["order_date", "store_id", "orders", "customers", "revenue"], "order_date")],
    ttl=TTL,
    owner=OWNER,
    version=1,
    lookback_days=7,
)


def store_daily_traffic(inputs: Inputs, days: Sequence[dt.date]) -> pl.DataFrame:
    rows = trailing_windows(
        inputs["daily_sales"],
        key="store_id",
        day="order_date",
        days=days,
        windows={
            1: [
                pl.col("orders").sum().alias("orders_1d"),
                pl.col("customers").sum().alias("customers_1d"),
                _money("revenue").alias("revenue_1d"),
            ],
            7: [pl.col("orders").sum().alias("orders_7d"), _money("revenue").alias("revenue_7d")],
        },
        zero=["orders_1d", "customers_1d", "revenue_1d", "orders_7d", "revenue_7d"],
    )
    if rows.height == 0:
        return rows
    return rows.with_columns(_ratio("revenue_7d", "orders_7d").alias("avg_order_value_7d"))


#: every retail view and the function that computes it
VIEWS = [
    (CUSTOMER_RFM, customer_rfm),
    (CUSTOMER_BASKET, customer_basket),
    (CUSTOMER_WEB, customer_web_activity),
    (PRODUCT_POPULARITY, product_popularity),
    (STORE_TRAFFIC, store_daily_traffic),
]

__all__ = [
    "CUSTOMER",
    "CUSTOMER_BASKET",
    "CUSTOMER_RFM",
    "CUSTOMER_WEB",
    "PRODUCT",
    "PRODUCT_POPULARITY",
    "STORE",
    "STORE_TRAFFIC",
    "VIEWS",
    "customer_basket",
    "customer_rfm",
    "customer_web_activity",
    "product_popularity",
    "store_daily_traffic",
]
