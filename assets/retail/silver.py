"""Silver retail: typed, conformed, deduplicated entities, each declared as a conformance spec
(the assets and checks are built by :mod:`lakehouse.modeling.silver`)."""

from collections.abc import Sequence
from typing import Any

import polars as pl

from assets.retail.bronze import PARTITION_COLUMN, SPECS
from lakehouse.metadata import Column
from lakehouse.modeling.conform import ConformSpec
from lakehouse.modeling.silver import SilverEntity, lineage_columns, on_partition_day, silver_definitions

OWNER = "team:retail-data"
_TS = pl.Datetime("us", "UTC")
_MONEY = pl.Decimal(18, 2)


def _cols(source: str, specs: Sequence[tuple[str, str, str, Sequence[str] | None]], **flags: Any) -> list[Column]:
    return lineage_columns(SPECS[source].bronze, specs, **flags)


_LINEAGE = [
    ("_source_file", "string", "Landing file of the winning version.", None),
    ("_source_line", "int64", "Line of the winning version in its file.", None),
    ("_row_hash", "string", "Hash of the winning version's raw values.", None),
]


def _order_day(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("order_ts").dt.date().alias("order_date"))


ENTITIES = [
    SilverEntity(
        name="orders",
        bronze=SPECS["orders"].bronze,
        owner=OWNER,
        description="Orders, one row per order (grain: order_id), typed and conformed. When an order was "
        "exported more than once, the version with the latest updated_at wins.",
        spec=ConformSpec(
            keys=["order_id"],
            types={
                "order_id": pl.Int64(),
                "order_ts": _TS,
                "customer_id": pl.Int64(),
                "store_id": pl.Int64(),
                "order_total": _MONEY,
                "updated_at": _TS,
            },
            required=["order_id", "order_ts", "customer_id", "store_id", "order_total", "updated_at"],
            latest_by=["updated_at"],
            lower=["channel", "status"],
            upper=["currency"],
            trim=["ship_city"],
            derive=_order_day,
            validate=on_partition_day("order_date"),
            columns=[
                "order_id",
                "order_ts",
                "order_date",
                "customer_id",
                "store_id",
                "channel",
                "status",
                "currency",
                "order_total",
                "ship_city",
                "coupon_code",
                "updated_at",
                "_source_file",
                "_source_line",
                "_row_hash",
            ],
        ),
        columns=_cols(
            "orders",
            [
                ("order_id", "int64", "Order number; the natural key (unique).", None),
                ("order_ts", "timestamp[us, UTC]", "When the order was placed.", None),
                ("order_date", "date", "UTC date of order_ts; the partition.", ["order_ts"]),
                ("customer_id", "int64", "Customer who placed the order.", None),
                ("store_id", "int64", "Store the order was placed in.", None),
                ("channel", "string", "web, store or app; null when unknown.", None),
                ("status", "string", "Order status, lower case.", None),
                ("currency", "string", "ISO 4217 currency code, upper case.", None),
                ("order_total", "decimal(18,2)", "Order total of the latest version of the order.", None),
                ("ship_city", "string", "City the order ships to, trimmed.", None),
                ("coupon_code", "string", "Coupon used, if any (exported from 2024-01-05 on).", None),
                ("updated_at", "timestamp[us, UTC]", "When this version was exported; the latest wins.", None),
                *_LINEAGE,
            ],
            order_id={"nullable": False, "unique": True},
        ),
        partition_column="order_date",
    ),
    SilverEntity(
        name="order_lines",
        bronze=SPECS["order_lines"].bronze,
        owner=OWNER,
        description="Order lines (grain: order_id, line_number) with net amounts; a corrected line replaces "
        "the earlier version (latest updated_at wins).",
        spec=ConformSpec(
            keys=["order_id", "line_number"],
            types={
                "order_id": pl.Int64(),
                "line_number": pl.Int64(),
                "product_id": pl.Int64(),
                "quantity": pl.Int64(),
                "unit_price": _MONEY,
                "discount": _MONEY,
                "updated_at": _TS,
            },
            required=["order_id", "line_number", "product_id", "quantity", "unit_price", "updated_at"],
            latest_by=["updated_at"],
            derive=lambda f: (
                f.with_columns(
                    pl.col(PARTITION_COLUMN).alias("order_date"),
                    pl.col("discount").fill_null(pl.lit(0).cast(_MONEY)),
                )
                .with_columns(
                    (pl.col("unit_price") * pl.col("quantity")).cast(_MONEY).alias("gross_amount"),
                )
                .with_columns((pl.col("gross_amount") - pl.col("discount")).cast(_MONEY).alias("net_amount"))
            ),
            validate=lambda f: pl.when(pl.col("quantity") <= 0).then(
                pl.format("quantity {} is not positive", pl.col("quantity"))
            ),
            columns=[
                "order_id",
                "line_number",
                "order_date",
                "product_id",
                "quantity",
                "unit_price",
                "discount",
                "gross_amount",
                "net_amount",
                "updated_at",
                "_source_file",
                "_source_line",
                "_row_hash",
            ],
        ),
        columns=_cols(
            "order_lines",
            [
                ("order_id", "int64", "Order number.", None),
                ("line_number", "int64", "Line within the order.", None),
                ("order_date", "date", "Day of the order (the landing day); the partition.", ["_partition_date"]),
                ("product_id", "int64", "Product sold.", None),
                ("quantity", "int64", "Units sold (positive).", None),
                ("unit_price", "decimal(18,2)", "Price per unit at the time of the order.", None),
                ("discount", "decimal(18,2)", "Discount on the line (0 when none).", None),
                ("gross_amount", "decimal(18,2)", "quantity x unit_price.", ["quantity", "unit_price"]),
                ("net_amount", "decimal(18,2)", "gross_amount - discount.", ["quantity", "unit_price", "discount"]),
                ("updated_at", "timestamp[us, UTC]", "When this version was exported; the latest wins.", None),
                *_LINEAGE,
            ],
        ),
        partition_column="order_date",
    ),
    SilverEntity(
        name="customers",
        bronze=SPECS["customers"].bronze,
        owner=OWNER,
        description="Customers, current state (grain: customer_id), MERGEd from the daily CRM snapshots; trimmed "
        "names, normalised country codes. History lives in gold dim_customer.",
        spec=ConformSpec(
            keys=["customer_id"],
            types={"customer_id": pl.Int64(), "birth_date": pl.Date(), "signup_date": pl.Date(), "updated_at": _TS},
            required=["customer_id", "updated_at"],
            latest_by=["updated_at"],
            trim=["first_name", "last_name", "street", "city", "postcode", "region", "phone"],
            lower=["email", "segment"],
            countries=["country"],
            columns=[
                "customer_id",
                "first_name",
                "last_name",
                "email",
                "phone",
                "birth_date",
                "street",
                "city",
                "postcode",
                "region",
                "country",
                "segment",
                "signup_date",
                "updated_at",
                "_source_file",
                "_source_line",
                "_row_hash",
            ],
        ),
        columns=_cols(
            "customers",
            [
                ("customer_id", "int64", "Customer number; the natural key.", None),
                ("first_name", "string", "Given name, trimmed.", None),
                ("last_name", "string", "Family name, trimmed.", None),
                ("email", "string", "E-mail address, lower case.", None),
                ("phone", "string", "Phone number as entered, trimmed.", None),
                ("birth_date", "date", "Date of birth.", None),
                ("street", "string", "Street and number.", None),
                ("city", "string", "City.", None),
                ("postcode", "string", "Postcode (text).", None),
                ("region", "string", "Region of the address.", None),
                ("country", "string", "ISO 3166-1 alpha-2 country code.", None),
                ("segment", "string", "consumer, small_business or corporate.", None),
                ("signup_date", "date", "Date the customer signed up.", None),
                ("updated_at", "timestamp[us, UTC]", "When the customer last changed in the CRM.", None),
                *_LINEAGE,
            ],
            customer_id={"nullable": False, "unique": True},
        ),
        mode="merge",
    ),
    SilverEntity(
        name="products",
        bronze=SPECS["products"].bronze,
        owner=OWNER,
        description="Products, current state (grain: product_id), MERGEd from the catalog API's incremental fetches.",
        spec=ConformSpec(
            keys=["product_id"],
            types={"product_id": pl.Int64(), "list_price": _MONEY, "unit_cost": _MONEY, "updated_at": _TS},
            required=["product_id", "list_price", "updated_at"],
            latest_by=["updated_at"],
            trim=["name", "brand", "sku"],
            lower=["category"],
            upper=["currency"],
            columns=[
                "product_id",
                "sku",
                "name",
                "brand",
                "category",
                "list_price",
                "unit_cost",
                "currency",
                "updated_at",
                "_source_file",
                "_source_line",
                "_row_hash",
            ],
        ),
        columns=_cols(
            "products",
            [
                ("product_id", "int64", "Product number; the natural key.", None),
                ("sku", "string", "Stock keeping unit.", None),
                ("name", "string", "Product name.", None),
                ("brand", "string", "Brand.", None),
                ("category", "string", "Category, lower case.", None),
                ("list_price", "decimal(18,2)", "Current list price.", None),
                ("unit_cost", "decimal(18,2)", "Purchase cost per unit.", None),
                ("currency", "string", "Currency of the prices.", None),
                ("updated_at", "timestamp[us, UTC]", "When the product last changed.", None),
                *_LINEAGE,
            ],
            product_id={"nullable": False, "unique": True},
        ),
        mode="merge",
    ),
    SilverEntity(
        name="stores",
        bronze=SPECS["stores"].bronze,
        owner=OWNER,
        description="Stores, current state (grain: store_id), MERGEd from the store reference exports.",
        spec=ConformSpec(
            keys=["store_id"],
            types={"store_id": pl.Int64(), "opened_on": pl.Date()},
            required=["store_id", "store_name"],
            latest_by=["_partition_date"],
            trim=["store_name", "city", "region"],
            lower=["store_type"],
            countries=["country"],
            derive=lambda f: f.with_columns(
                pl.col(PARTITION_COLUMN).cast(pl.Datetime("us", "UTC")).alias("updated_at")
            ),
            columns=[
                "store_id",
                "store_name",
                "city",
                "region",
                "country",
                "store_type",
                "opened_on",
                "updated_at",
                "_source_file",
                "_source_line",
                "_row_hash",
            ],
        ),
        columns=_cols(
            "stores",
            [
                ("store_id", "int64", "Store number; the natural key.", None),
                ("store_name", "string", "Store name.", None),
                ("city", "string", "City.", None),
                ("region", "string", "Region (state/province).", None),
                ("country", "string", "ISO 3166-1 alpha-2 country code.", None),
                ("store_type", "string", "flagship, standard or outlet.", None),
                ("opened_on", "date", "Opening date.", None),
                ("updated_at", "timestamp[us, UTC]", "Day of the export this state comes from.", ["_partition_date"]),
                *_LINEAGE,
            ],
            store_id={"nullable": False, "unique": True},
        ),
        mode="merge",
    ),
    SilverEntity(
        name="web_requests",
        bronze=SPECS["web_logs"].bronze,
        owner=OWNER,
        description="Parsed web server requests (grain: one log line), with bot flag and product page ids.",
        spec=ConformSpec(
            keys=["_source_file", "_source_line"],
            types={"request_ts": _TS, "status": pl.Int64(), "bytes": pl.Int64()},
            required=["request_ts", "client_ip", "status"],
            derive=lambda f: f.with_columns(
                pl.col(PARTITION_COLUMN).alias("log_date"),
                pl.col("user_agent").str.contains(r"(?i)bot|crawler|spider").fill_null(False).alias("is_bot"),
                pl.col("path").str.extract(r"^/products/([0-9]+)", 1).cast(pl.Int64, strict=False).alias("product_id"),
                (pl.col("status") // 100).cast(pl.Int64).alias("status_class"),
            ),
            columns=[
                "log_date",
                "request_ts",
                "client_ip",
                "method",
                "path",
                "protocol",
                "status",
                "status_class",
                "bytes",
                "referrer",
                "user_agent",
                "is_bot",
                "product_id",
                "_source_file",
                "_source_line",
                "_row_hash",
            ],
        ),
        columns=_cols(
            "web_logs",
            [
                ("log_date", "date", "Day of the log files; the partition.", ["_partition_date"]),
                ("request_ts", "timestamp[us, UTC]", "Request time (UTC).", None),
                ("client_ip", "string", "Client address.", None),
                ("method", "string", "HTTP method.", None),
                ("path", "string", "Requested path.", None),
                ("protocol", "string", "HTTP protocol.", None),
                ("status", "int64", "HTTP status.", None),
                ("status_class", "int64", "Status class: 2, 3, 4 or 5.", ["status"]),
                ("bytes", "int64", "Response bytes (null when not logged).", None),
                ("referrer", "string", "Referer header.", None),
                ("user_agent", "string", "User agent.", None),
                ("is_bot", "bool", "User agent looks like a crawler.", ["user_agent"]),
                ("product_id", "int64", "Product of a /products/{id} page.", ["path"]),
                ("_source_file", "string", "Log file.", None),
                ("_source_line", "int64", "Line in the log file.", None),
                ("_row_hash", "string", "Hash of the parsed values.", None),
            ],
        ),
        partition_column="log_date",
    ),
    SilverEntity(
        name="events",
        bronze=SPECS["events"].bronze,
        owner=OWNER,
        description="Clickstream events (grain: event_id), deduplicated, with page and device flattened.",
        spec=ConformSpec(
            keys=["event_id"],
            types={"event_ts": _TS, "customer_id": pl.Int64()},
            required=["event_id", "event_ts", "event_type"],
            latest_by=["event_ts"],
            lower=["event_type"],
            derive=lambda f: f.with_columns(
                pl.col("event_ts").dt.date().alias("event_date"),
                pl.col("context__page").alias("page"),
                pl.col("context__referrer").alias("referrer"),
                pl.col("context__device__type").alias("device_type"),
                pl.col("context__device__os").alias("device_os"),
            ),
            validate=on_partition_day("event_date"),
            columns=[
                "event_id",
                "event_ts",
                "event_date",
                "event_type",
                "customer_id",
                "anonymous_id",
                "page",
                "referrer",
                "device_type",
                "device_os",
                "items",
                "_source_file",
                "_source_line",
                "_row_hash",
            ],
        ),
        columns=_cols(
            "events",
            [
                ("event_id", "string", "Event identifier; the natural key.", None),
                ("event_ts", "timestamp[us, UTC]", "When the event happened.", None),
                ("event_date", "date", "UTC date of the event; the partition.", ["event_ts"]),
                ("event_type", "string", "page_view, add_to_cart or purchase.", None),
                ("customer_id", "int64", "Logged-in customer; null when anonymous.", None),
                ("anonymous_id", "string", "Browser/app identifier.", None),
                ("page", "string", "Page of the event.", ["context__page"]),
                ("referrer", "string", "Referrer URL.", ["context__referrer"]),
                ("device_type", "string", "desktop, mobile or tablet.", ["context__device__type"]),
                ("device_os", "string", "Operating system.", ["context__device__os"]),
                ("items", "list", "Products involved: [{product_id, quantity}].", None),
                *_LINEAGE,
            ],
            event_id={"nullable": False, "unique": True},
        ),
        partition_column="event_date",
    ),
]
BY_NAME = {e.name: e for e in ENTITIES}


SILVER = BY_NAME["orders"].ref  # kept for gold modules that build on orders
defs = silver_definitions(ENTITIES)

__all__ = ["BY_NAME", "ENTITIES", "SILVER", "SilverEntity", "defs"]
