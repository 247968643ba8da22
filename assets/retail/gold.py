"""Gold retail: a Kimball star schema and a daily sales mart.

Dimensions keep history with :func:`lakehouse.modeling.scd2.scd2_merge` (type 2 on the tracked
attributes, type 1 corrections in place, deterministic surrogate keys, an unknown member -1, and
inferred members for keys a day's facts use before the dimension row has arrived). ``fct_sales``
has one row per order line and resolves each foreign key *as of the order timestamp*.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import polars as pl

from assets.retail.silver import BY_NAME, SilverEntity
from lakehouse.automation import NEW_PARTITION
from lakehouse.checks import CheckOutcome, aggregate_match_check, lake_check, unique_key_check
from lakehouse.exceptions import ChangeFeedUnavailableError
from lakehouse.governance.masking import redact_value, redaction_key
from lakehouse.io_manager import PARTITION_EXPR, LakehouseIOManager
from lakehouse.metadata import Column, columns_metadata, polars_schema
from lakehouse.modeling.dates import DATE_COLUMNS, date_dimension, date_sk
from lakehouse.modeling.keys import UNKNOWN_SK
from lakehouse.modeling.scd2 import MAX_TS, MIN_TS, SCD2Spec, scd2_merge
from lakehouse.naming import TableRef, pool_for
from lakehouse.partitions import daily_partitions, partition_values
from lakehouse.resource import LakeResource
from lakehouse.settings import get_settings
from lakehouse.tables import Lake, Predicate, TableStore, col

OWNER = "team:retail-analytics"
KINDS = {"polars", get_settings().table_format}
ORDERS, LINES = BY_NAME["orders"], BY_NAME["order_lines"]

CURRENT_PER_KEY = "one_current_row_per_key"
CONTIGUOUS = "contiguous_validity"
FOREIGN_KEYS = "foreign_keys_exist"

_SCD_COLUMNS = [
    ("valid_from", "timestamp[us, UTC]", "Start of this version (inclusive); 1900-01-01 for a key's first version."),
    ("valid_to", "timestamp[us, UTC]", "End of this version (exclusive); 9999-12-31 for the current version."),
    ("is_current", "bool", "The version in effect now."),
    ("is_inferred", "bool", "A placeholder created for facts that arrived before the source row."),
    ("_effective_at", "timestamp[us, UTC]", "Source time (updated_at) the version was derived from."),
]


@dataclass(frozen=True)
class Dimension:
    """A gold dimension built from one silver entity."""

    name: str
    source: SilverEntity
    spec: SCD2Spec
    description: str
    attribute_docs: dict[str, str]
    #: (silver entity, column, partition column): keys the day's facts use, for inferred members
    referenced_by: Sequence[tuple[SilverEntity, str]] = ()

    @property
    def ref(self) -> TableRef:
        return TableRef("gold", "retail", self.name)

    def columns(self) -> list[Column]:
        source = self.source.ref.path
        types = {c.name: c.type for c in self.source.columns}
        sk = Column(
            self.spec.surrogate_key,
            "int64",
            "Surrogate key (deterministic hash; -1 = unknown member).",
            nullable=False,
            unique=True,
            lineage=[(source, self.spec.natural_key)],
        )
        nk = Column(
            self.spec.natural_key,
            types[self.spec.natural_key],
            "Natural key from the source.",
            lineage=[(source, self.spec.natural_key)],
        )
        attrs = [
            Column(
                a,
                types[a],
                self.attribute_docs.get(a, a)
                + (
                    " (SCD2: a change starts a new version)"
                    if a in self.spec.type2
                    else " (SCD1: corrected on every version)"
                ),
                lineage=[(source, a)],
            )
            for a in self.spec.attributes
        ]
        scd = [Column(n, t, d, lineage=[(source, "updated_at")]) for n, t, d in _SCD_COLUMNS]
        return [sk, nk, *attrs, *scd]


DIMENSIONS = [
    Dimension(
        name="dim_customer",
        source=BY_NAME["customers"],
        spec=SCD2Spec(
            natural_key="customer_id",
            surrogate_key="customer_sk",
            type2=("segment", "street", "city", "postcode", "region", "country"),
            type1=("first_name", "last_name", "email", "phone", "birth_date", "signup_date"),
            unknown={
                "segment": "unknown",
                "city": "unknown",
                "region": "unknown",
                "country": "XX",
                "first_name": "Unknown",
            },
        ),
        description="Customers with history (grain: one row per customer version). SCD type 2 on segment and "
        "address (street, city, postcode, region, country); SCD type 1 on name, email, phone and dates.",
        attribute_docs={c.name: c.description for c in BY_NAME["customers"].columns},
        referenced_by=[(ORDERS, "customer_id")],
    ),
    Dimension(
        name="dim_product",
        source=BY_NAME["products"],
        spec=SCD2Spec(
            natural_key="product_id",
            surrogate_key="product_sk",
            type2=("list_price", "category", "unit_cost"),
            type1=("sku", "name", "brand", "currency"),
            unknown={"category": "unknown", "name": "Unknown product"},
        ),
        description="Products with history (grain: one row per product version). SCD type 2 on list price, "
        "category and unit cost; SCD type 1 on SKU, name, brand.",
        attribute_docs={c.name: c.description for c in BY_NAME["products"].columns},
        referenced_by=[(LINES, "product_id")],
    ),
    Dimension(
        name="dim_store",
        source=BY_NAME["stores"],
        spec=SCD2Spec(
            natural_key="store_id",
            surrogate_key="store_sk",
            type2=(),
            type1=("store_name", "city", "region", "country", "store_type", "opened_on"),
            unknown={"store_name": "Unknown store", "region": "unknown", "country": "XX"},
        ),
        description="Stores (grain: store_id). SCD type 1: a rename or a new region overwrites in place.",
        attribute_docs={c.name: c.description for c in BY_NAME["stores"].columns},
        referenced_by=[(ORDERS, "store_id")],
    ),
]


SOURCE_VERSION = "lakehouse_source_version"


def last_source_version(store: TableStore, ref: TableRef, marker: str) -> int | None:
    """The source version this table last consumed, from its own commit history (so the position
    and the data it produced are committed together)."""
    if not store.exists(ref):
        return None
    for commit in store.history(ref):
        if marker in commit.user_metadata:
            return int(commit.user_metadata[marker])
    return None


def read_source_changes(
    store: TableStore, ref: TableRef, columns: Sequence[str], key: str, *, since: int | None
) -> tuple[pl.DataFrame, list[Any], str]:
    """Every state inserted or updated in the source after version ``since`` (the whole history on
    a first run) and the keys deleted, via :meth:`TableStore.changes`; the current table (and no
    deletes) when the change feed cannot answer (e.g. versions already vacuumed)."""
    try:
        changes = store.changes(ref, since=-1 if since is None else since, keys=[key])
    except ChangeFeedUnavailableError:
        return store.read(ref, columns=list(columns)).collect(), [], "full"
    upserted = changes.filter(pl.col("_change_type").is_in(["insert", "update_postimage"]))
    # every state, not only the newest per key: a range of source commits (a backfill) holds each
    # day's state, and the SCD2 merge orders them by their effective time
    states = upserted.sort("_commit_version").select(list(columns)).unique(maintain_order=True)
    gone = set(changes.filter(pl.col("_change_type") == "delete").get_column(key).to_list())
    return (
        states,
        sorted(gone - set(states.get_column(key).to_list()), key=str),
        "all changes" if since is None else f"changes since version {since}",
    )


def _dimension_asset(dim: Dimension) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(dim.source.ref.path), *[dg.AssetKey(e.ref.path) for e, _ in dim.referenced_by]]

    @dg.asset(
        key=dim.ref.path,
        pool=pool_for(dim.ref),
        deps=deps,
        partitions_def=daily_partitions,
        owners=[OWNER],
        kinds=KINDS,
        description=dim.description,
        metadata=columns_metadata(dim.columns()),
    )
    def _dim(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        the_lake = lake.lake()
        source, nk = dim.source.ref, dim.spec.natural_key
        source_store = the_lake.existing_store(source)
        store = the_lake.store_for(dim.ref)
        marker = f"{SOURCE_VERSION}:{source}"
        incoming, deleted, mode = read_source_changes(
            source_store,
            source,
            [nk, *dim.spec.attributes, dim.spec.effective_from],
            nk,
            since=last_source_version(store, dim.ref, marker),
        )
        days = partition_values(context.partition_keys)
        referenced: set[Any] = set()
        for entity, column in dim.referenced_by:
            used = the_lake.existing_store(entity.ref).read(
                entity.ref, columns=[column], where=col(entity.partition_column).is_in(days)
            )
            referenced |= set(used.collect().get_column(column).drop_nulls().to_list())
        known = set(source_store.read(source, columns=[nk]).collect().get_column(nk).to_list())
        inferred = referenced - known
        schema = {
            **incoming.schema,
            **polars_schema([c for c in dim.columns() if c.type in ("bool", "timestamp[us, UTC]", "int64")]),
        }
        result = scd2_merge(
            store,
            dim.ref,
            incoming,
            dim.spec,
            inferred_keys=inferred,
            deleted_keys=deleted,
            schema=schema,
            commit_metadata={"dagster_run_id": context.run_id, marker: str(source_store.version(source))},
        )
        info = store.info(dim.ref)
        meta = LakehouseIOManager.write_metadata(store, dim.ref, result, info.rows)
        meta.update(
            {
                "source_read": mode,
                "source_rows": incoming.height,
                "source_deletes": len(deleted),
                "inferred_members_requested": len(inferred),
            }
        )
        return dg.MaterializeResult(metadata=meta)

    return _dim


def _redacted_sample(bad: pl.DataFrame, nk: str, lake: Lake) -> list[dict[str, object]]:
    """Rows of a failed check as metadata: natural keys are personal (customer_id), so only their
    keyed hashes leave the tables."""
    if bad.is_empty():
        return []  # a passing check reads no key
    key = redaction_key(lake.settings)
    return [{nk: redact_value(row[nk], key), "current": row["current"]} for row in bad.to_dicts()]


def _dimension_checks(dim: Dimension) -> list[dg.AssetChecksDefinition]:
    ref, nk, sk = dim.ref, dim.spec.natural_key, dim.spec.surrogate_key

    def current(lake: Lake, _: Predicate | None, __: dg.AssetCheckExecutionContext) -> CheckOutcome:
        frame = lake.existing_store(ref).read(ref, columns=[nk, "is_current"]).collect()
        counts = frame.filter(pl.col(nk).is_not_null()).group_by(nk).agg(pl.col("is_current").sum().alias("current"))
        bad = counts.filter(pl.col("current") != 1)
        return CheckOutcome(
            passed=bad.height == 0,
            description=f"{counts.height} keys, each with exactly one current row"
            if bad.height == 0
            else f"{bad.height} key(s) without exactly one current row",
            metadata={
                "keys": counts.height,
                "bad_keys": bad.height,
                "sample": dg.MetadataValue.json(_redacted_sample(bad.head(5), nk, lake)),
            },
        )

    def contiguous(lake: Lake, _: Predicate | None, __: dg.AssetCheckExecutionContext) -> CheckOutcome:
        frame = (
            lake.existing_store(ref)
            .read(ref, columns=[nk, "valid_from", "valid_to"])
            .collect()
            .filter(pl.col(nk).is_not_null())
        )
        ordered = frame.sort(nk, "valid_from").with_columns(
            pl.col("valid_from").shift(-1).over(nk).alias("next_from"),
            (pl.col("valid_from") == pl.col("valid_from").min().over(nk)).alias("first"),
        )
        gaps = ordered.filter(pl.col("next_from").is_not_null() & (pl.col("valid_to") != pl.col("next_from")))
        bad_ends = ordered.filter(
            (pl.col("first") & (pl.col("valid_from") != pl.lit(MIN_TS)))
            | (pl.col("next_from").is_null() & (pl.col("valid_to") != pl.lit(MAX_TS)))
        )
        empty = ordered.filter(pl.col("valid_from") >= pl.col("valid_to"))
        problems = gaps.height + bad_ends.height + empty.height
        return CheckOutcome(
            passed=problems == 0,
            description=f"validity intervals of {ordered.get_column(nk).n_unique()} keys are contiguous and cover all time"
            if problems == 0
            else f"{gaps.height} gap/overlap(s), {bad_ends.height} open end(s), {empty.height} empty interval(s)",
            metadata={
                "versions": ordered.height,
                "gaps_or_overlaps": gaps.height,
                "bad_ends": bad_ends.height,
                "empty": empty.height,
            },
        )

    return [
        unique_key_check(asset=ref.path, columns=[sk], partitions_def=daily_partitions),
        lake_check(
            asset=ref.path,
            name=CURRENT_PER_KEY,
            description="Exactly one current row per natural key.",
            evaluate=current,
            partitions_def=daily_partitions,
        ),
        lake_check(
            asset=ref.path,
            name=CONTIGUOUS,
            description="Per key: no gaps, no overlaps, first version from 1900-01-01, current to 9999-12-31.",
            evaluate=contiguous,
            partitions_def=daily_partitions,
        ),
    ]


# -- dim_date --------------------------------------------------------------------------------------

DIM_DATE = TableRef("gold", "retail", "dim_date")


@dg.asset(
    key=DIM_DATE.path,
    pool=pool_for(DIM_DATE),
    partitions_def=daily_partitions,
    # no upstream to follow: when a new day's partition appears, write it (the calendar it writes
    # covers the whole range, so facts of any day find their date)
    # (eager() would skip the day already missing when the daemon starts: no calendar until midnight)
    automation_condition=NEW_PARTITION,
    owners=[OWNER],
    kinds=KINDS,
    description="Calendar (grain: one row per day) from the first partition to the end of next year: ISO weeks, "
    "months, quarters, weekend flag and a fiscal calendar starting in February. date_sk = yyyymmdd.",
    metadata=columns_metadata(
        [
            Column(n, "int64" if n == "date_sk" else "inferred", d, unique=n == "date_sk", nullable=False)
            for n, d in DATE_COLUMNS.items()
        ]
    ),
)
def dim_date(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    settings = lake.settings()
    last = max(*(d for d in partition_values(context.partition_keys) if isinstance(d, dt.date)), dt.date.today())
    frame = date_dimension(settings.start_date, dt.date(last.year + 1, 12, 31))
    store = Lake(settings).store_for(DIM_DATE)
    result = store.merge(DIM_DATE, frame, keys=["date_sk"])  # a no-op unless the range grew
    return dg.MaterializeResult(
        metadata=LakehouseIOManager.write_metadata(store, DIM_DATE, result, store.info(DIM_DATE).rows)
    )


# -- fct_sales ---------------------------------------------------------------------------------------

FCT_SALES = TableRef("gold", "retail", "fct_sales")
_DIMS = {d.name: d for d in DIMENSIONS}


def _lineage(*pairs: tuple[SilverEntity | Dimension | TableRef, str]) -> list[tuple[list[str], str]]:
    return [((x.ref if not isinstance(x, TableRef) else x).path, c) for x, c in pairs]


FCT_COLUMNS = [
    Column(
        "order_id",
        "int64",
        "Order number (degenerate dimension).",
        nullable=False,
        lineage=_lineage((LINES, "order_id")),
    ),
    Column(
        "line_number",
        "int64",
        "Line within the order; with order_id the grain.",
        nullable=False,
        lineage=_lineage((LINES, "line_number")),
    ),
    Column(
        "order_date",
        "date",
        "Day of the order; the partition.",
        nullable=False,
        lineage=_lineage((LINES, "order_date")),
    ),
    Column(
        "order_ts",
        "timestamp[us, UTC]",
        "When the order was placed (null if its header is missing).",
        lineage=_lineage((ORDERS, "order_ts")),
    ),
    Column(
        "date_sk",
        "int64",
        "Order day: dim_date.date_sk.",
        nullable=False,
        lineage=_lineage((LINES, "order_date"), (DIM_DATE, "date_sk")),
    ),
    Column(
        "customer_sk",
        "int64",
        "dim_customer version in effect at order_ts (-1 unknown).",
        nullable=False,
        lineage=_lineage((ORDERS, "customer_id"), (_DIMS["dim_customer"], "customer_sk")),
    ),
    Column(
        "product_sk",
        "int64",
        "dim_product version in effect at order_ts (-1 unknown).",
        nullable=False,
        lineage=_lineage((LINES, "product_id"), (_DIMS["dim_product"], "product_sk")),
    ),
    Column(
        "store_sk",
        "int64",
        "dim_store row (-1 unknown).",
        nullable=False,
        lineage=_lineage((ORDERS, "store_id"), (_DIMS["dim_store"], "store_sk")),
    ),
    Column("channel", "string", "web, store or app.", lineage=_lineage((ORDERS, "channel"))),
    Column("quantity", "int64", "Units sold.", nullable=False, lineage=_lineage((LINES, "quantity"))),
    Column("unit_price", "decimal(18,2)", "Price per unit charged.", lineage=_lineage((LINES, "unit_price"))),
    Column("gross_amount", "decimal(18,2)", "quantity x unit_price.", lineage=_lineage((LINES, "gross_amount"))),
    Column("discount", "decimal(18,2)", "Discount on the line.", lineage=_lineage((LINES, "discount"))),
    Column(
        "net_amount", "decimal(18,2)", "gross_amount - discount: the revenue.", lineage=_lineage((LINES, "net_amount"))
    ),
    Column(
        "cost_amount",
        "decimal(18,2)",
        "quantity x the product version's unit cost.",
        lineage=_lineage((LINES, "quantity"), (_DIMS["dim_product"], "unit_cost")),
    ),
    Column(
        "margin_amount",
        "decimal(18,2)",
        "net_amount - cost_amount.",
        lineage=_lineage((LINES, "net_amount"), (_DIMS["dim_product"], "unit_cost")),
    ),
]


def resolve_as_of(
    facts: pl.DataFrame, dim: pl.DataFrame, *, key: str, sk: str, at: str, keep: Sequence[str] = ()
) -> pl.DataFrame:
    """Add the dimension's surrogate key (and ``keep`` attributes) of the version in effect at
    ``at`` for each fact's ``key``; unknown when the key or the time is null or matches nothing."""
    # both sides sorted on the as-of column (globally, hence within every key group too)
    versions = dim.filter(pl.col(key).is_not_null()).select(key, sk, "valid_from", "valid_to", *keep).sort("valid_from")
    facts = facts.with_row_index("__row")
    matched = (
        facts.filter(pl.col(key).is_not_null() & pl.col(at).is_not_null())
        .select("__row", key, at)
        .sort(at)
        .join_asof(versions, left_on=at, right_on="valid_from", by=key, strategy="backward", check_sortedness=False)
    )
    matched = matched.filter(pl.col(at) < pl.col("valid_to")).select("__row", sk, *keep)
    out = facts.join(matched, on="__row", how="left").with_columns(pl.col(sk).fill_null(UNKNOWN_SK))
    return out.sort("__row").drop("__row")


@dg.asset(
    key=FCT_SALES.path,
    pool=pool_for(FCT_SALES),
    ins={
        "lines": dg.AssetIn(key=LINES.ref.path),
        "orders": dg.AssetIn(key=ORDERS.ref.path),
    },
    deps=[dg.AssetKey(d.ref.path) for d in DIMENSIONS] + [dg.AssetKey(DIM_DATE.path)],
    partitions_def=daily_partitions,
    owners=[OWNER],
    kinds=KINDS,
    description="Sales facts (grain: one order line). Measures quantity, gross, discount, net, cost and margin; "
    "foreign keys to dim_date, dim_customer, dim_product and dim_store resolved as of the order timestamp.",
    metadata={PARTITION_EXPR: "order_date", **columns_metadata(FCT_COLUMNS)},
)
def fct_sales(lines: pl.DataFrame, orders: pl.DataFrame, lake: LakeResource) -> pl.DataFrame:
    the_lake = lake.lake()
    facts = lines.join(
        orders.select("order_id", "order_ts", "customer_id", "store_id", "channel"), on="order_id", how="left"
    )
    # the customer, product and store versions in effect when the order was placed
    dims = {d.name: the_lake.existing_store(d.ref).read(d.ref).collect() for d in DIMENSIONS}
    facts = resolve_as_of(facts, dims["dim_customer"], key="customer_id", sk="customer_sk", at="order_ts")
    facts = resolve_as_of(
        facts, dims["dim_product"], key="product_id", sk="product_sk", at="order_ts", keep=["unit_cost"]
    )
    facts = resolve_as_of(facts, dims["dim_store"], key="store_id", sk="store_sk", at="order_ts")
    facts = facts.with_columns(
        date_sk("order_date").alias("date_sk"),
        (pl.col("unit_cost").fill_null(0) * pl.col("quantity")).cast(pl.Decimal(18, 2)).alias("cost_amount"),
    ).with_columns((pl.col("net_amount") - pl.col("cost_amount")).cast(pl.Decimal(18, 2)).alias("margin_amount"))
    out = facts.select([c.name for c in FCT_COLUMNS]).sort("order_id", "line_number")
    return out if out.height else pl.DataFrame(schema=polars_schema(FCT_COLUMNS))


def _foreign_keys(lake: Lake, part: Predicate | None, _: dg.AssetCheckExecutionContext) -> CheckOutcome:
    facts = lake.existing_store(FCT_SALES).read(FCT_SALES, where=part).collect()
    problems: dict[str, int] = {}
    unknown: dict[str, int] = {}
    targets = {
        "customer_sk": _DIMS["dim_customer"].ref,
        "product_sk": _DIMS["dim_product"].ref,
        "store_sk": _DIMS["dim_store"].ref,
        "date_sk": DIM_DATE,
    }
    for column, ref in targets.items():
        keys = lake.existing_store(ref).read(ref, columns=[column]).collect()
        problems[column] = facts.join(keys, on=column, how="anti").height
        unknown[column] = facts.filter(pl.col(column) == UNKNOWN_SK).height
    missing = sum(problems.values())
    return CheckOutcome(
        passed=missing == 0,
        description=f"all {facts.height} fact rows' keys exist in their dimensions"
        if missing == 0
        else f"dangling keys: {problems}",
        metadata={
            "rows": facts.height,
            **{f"dangling_{k}": v for k, v in problems.items()},
            **{f"unknown_{k}": v for k, v in unknown.items()},
        },
    )


fct_checks = [
    lake_check(
        asset=FCT_SALES.path,
        name=FOREIGN_KEYS,
        description="Every fact foreign key exists in its dimension (-1 is the unknown member, which exists).",
        evaluate=_foreign_keys,
        partitions_def=daily_partitions,
        partition_column="order_date",
        additional_deps=[d.ref.path for d in DIMENSIONS] + [DIM_DATE.path],
    ),
    aggregate_match_check(
        asset=FCT_SALES.path,
        upstream=LINES.ref.path,
        aggregates={
            "net_amount": (pl.col("net_amount").sum(), pl.col("net_amount").sum()),
            "lines": (pl.len(), pl.len()),
        },
        partitions_def=daily_partitions,
        partition_column="order_date",
        description="Net amount and line count per day equal the silver order lines' (nothing dropped or doubled).",
    ),
]

# -- daily_sales mart ----------------------------------------------------------------------------------

DAILY_SALES = TableRef("gold", "retail", "daily_sales")
DAILY_SALES_COLUMNS = [
    Column(
        "order_date",
        "date",
        "Day of the orders (UTC); the partition.",
        nullable=False,
        lineage=_lineage((ORDERS, "order_date")),
    ),
    Column("store_id", "int64", "Store.", nullable=False, lineage=_lineage((ORDERS, "store_id"))),
    Column(
        "orders",
        "int64",
        "Number of orders placed that day in that store.",
        nullable=False,
        lineage=_lineage((ORDERS, "order_id")),
    ),
    Column(
        "customers",
        "int64",
        "Distinct customers who ordered.",
        nullable=False,
        lineage=_lineage((ORDERS, "customer_id")),
    ),
    Column(
        "revenue",
        "decimal(18,2)",
        "Sum of order totals (latest version of each order).",
        nullable=False,
        lineage=_lineage((ORDERS, "order_total")),
    ),
]


def daily_sales_from_orders(orders: pl.DataFrame) -> pl.DataFrame:
    """Per order_date and store: orders, distinct customers and revenue."""
    return (
        orders.group_by("order_date", "store_id")
        .agg(
            pl.len().cast(pl.Int64).alias("orders"),
            pl.col("customer_id").n_unique().cast(pl.Int64).alias("customers"),
            pl.col("order_total").sum().cast(pl.Decimal(18, 2)).alias("revenue"),
        )
        .sort("order_date", "store_id")
    )


@dg.asset(
    key=DAILY_SALES.path,
    pool=pool_for(DAILY_SALES),
    ins={"orders": dg.AssetIn(key=ORDERS.ref.path)},
    partitions_def=daily_partitions,
    owners=[OWNER],
    kinds=KINDS,
    description="Sales per day and store (grain: order_date, store_id): orders, distinct customers, revenue.",
    metadata={PARTITION_EXPR: "order_date", **columns_metadata(DAILY_SALES_COLUMNS)},
)
def daily_sales(orders: pl.DataFrame) -> pl.DataFrame:
    out = daily_sales_from_orders(orders)
    return out if out.height else pl.DataFrame(schema=polars_schema(DAILY_SALES_COLUMNS))


daily_sales_totals = aggregate_match_check(
    asset=DAILY_SALES.path,
    upstream=ORDERS.ref.path,
    aggregates={
        "revenue": (pl.col("revenue").sum(), pl.col("order_total").sum()),
        "orders": (pl.col("orders").sum(), pl.len()),
    },
    partitions_def=daily_partitions,
    partition_column="order_date",
    description="Revenue and order count per partition equal the silver orders' totals.",
)

defs = dg.Definitions(
    assets=[*[_dimension_asset(d) for d in DIMENSIONS], dim_date, fct_sales, daily_sales],
    asset_checks=[*[c for d in DIMENSIONS for c in _dimension_checks(d)], *fct_checks, daily_sales_totals],
)

__all__ = ["DAILY_SALES", "DIMENSIONS", "DIM_DATE", "FCT_SALES", "defs", "resolve_as_of"]
