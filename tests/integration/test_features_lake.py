"""Feature views materialised in process on a small constructed lake (both table formats):
point-in-time correctness (no leakage, TTL), drift, versions in the table metadata, and the
online store (SQLite and a real Redis) agreeing with the offline join, erasure included."""

import datetime as dt
from decimal import Decimal

import dagster as dg
import polars as pl
import pytest
from conftest import FORMATS, port_open, require

from assets.features.retail import CUSTOMER, CUSTOMER_RFM, customer_rfm
from lakehouse.features.drift import DRIFT_CHECK
from lakehouse.features.factory import feature_view_asset
from lakehouse.features.offline import get_historical_features
from lakehouse.features.online import clear_online_store, erase, get_online_features, materialize_online, online_store
from lakehouse.features.registry import FeatureRegistry
from lakehouse.features.spec import SPEC_KEY, VERSION_KEY, Feature, FeatureSource, FeatureView
from lakehouse.features.windows import trailing_windows
from lakehouse.naming import TableRef
from lakehouse.resource import LakeResource
from lakehouse.settings import get_settings
from lakehouse.tables import Lake

UTC = dt.UTC
ORDERS = TableRef("silver", "retail", "orders")
D1, D2, D3 = dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)
CUSTOMERS = range(1, 61)


def at(day, hour=0, minute=0):
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


# a one-day window, so drift is judged from the second day on
SPEND = FeatureView(
    name="test_spend",
    entity=CUSTOMER,
    features=[
        Feature("orders_1d", "int64", "Orders that day.", 1),
        Feature("revenue_1d", "float64", "Revenue that day.", 1),
    ],
    sources=[FeatureSource(ORDERS, ["customer_id", "order_date", "order_total"], "order_date")],
    ttl=dt.timedelta(days=2),
    owner="team:test",
    version=1,
    description="Per customer and day: orders and revenue.",
    lookback_days=1,
    drift_min_rows=50,
)


def spend(inputs, days):
    return trailing_windows(
        inputs["orders"],
        key="customer_id",
        day="order_date",
        days=days,
        windows={1: [pl.len().alias("orders_1d"), pl.col("order_total").sum().cast(pl.Float64).alias("revenue_1d")]},
        zero=["orders_1d", "revenue_1d"],
    )


def constructed_orders():
    """Every customer orders once a day: small amounts on day 1, ten times more on days 2 and 3
    (drift on day 2, none on day 3); customer 1 also orders 5000.00 late on day 2."""
    rows = []
    for day, base in ((D1, 10), (D2, 100), (D3, 100)):
        for c in CUSTOMERS:
            rows.append((len(rows) + 1, c, at(day, 10), day, Decimal(base + c % 5)))
    rows.append((len(rows) + 1, 1, at(D2, 23, 30), D2, Decimal("5000.00")))
    return pl.DataFrame(
        rows,
        schema={
            "order_id": pl.Int64,
            "customer_id": pl.Int64,
            "order_ts": pl.Datetime("us", "UTC"),
            "order_date": pl.Date,
            "order_total": pl.Decimal(18, 2),
        },
        orient="row",
    )


@pytest.fixture(scope="module", params=FORMATS)
def small_lake(request, tmp_path_factory):
    """Silver orders for three days, and customer_rfm + test_spend materialised over them in one run."""
    home = tmp_path_factory.mktemp(f"features-{request.param}")
    settings = get_settings({"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_TABLE_FORMAT": request.param})
    lake = Lake(settings)
    orders = constructed_orders()
    lake.store().overwrite_partitions(ORDERS, orders, partition_by="order_date", values=[D1, D2, D3])
    result = dg.materialize(
        [feature_view_asset(CUSTOMER_RFM, customer_rfm), feature_view_asset(SPEND, spend)],
        resources={"lake": LakeResource.from_settings(settings)},
        tags={"dagster/asset_partition_range_start": str(D1), "dagster/asset_partition_range_end": str(D3)},
        raise_on_error=True,
    )
    return settings, lake, orders, result


def test_feature_rows_only_use_events_before_their_timestamp(small_lake):
    _, lake, orders, _ = small_lake
    table = lake.store().read(CUSTOMER_RFM.ref).collect()
    assert table.height == 3 * len(CUSTOMERS)
    # recomputed independently: every order strictly before the row's event_timestamp, 30 days back
    for row in table.iter_rows(named=True):
        assert row["event_timestamp"] == at(row["feature_date"]) + dt.timedelta(days=1)
        mine = orders.filter(
            (pl.col("customer_id") == row["customer_id"]) & (pl.col("order_ts") < row["event_timestamp"])
        )
        assert row["orders_30d"] == mine.height
        assert Decimal(str(row["revenue_30d"])) == sum(mine.get_column("order_total").to_list(), Decimal(0))
        assert row["recency_days"] == 0  # everybody ordered every day
    one = table.filter(pl.col("customer_id") == 1).sort("feature_date")
    assert one.get_column("revenue_30d").to_list() == [11.0, 5112.0, 5213.0]


def test_point_in_time_join_returns_the_past_value_when_the_future_differs_and_honours_the_ttl(small_lake):
    _, lake, _, _ = small_lake
    times = [
        at(D2, 12),  # after customer 1's day-2 orders began, before day 2 is complete: day 1's values
        at(D3),  # day 2 complete (with the 5000.00 order)
        at(D3) + dt.timedelta(days=3),  # day 3's row (known at D4 00:00) is exactly 2 days old: valid
        at(D3) + dt.timedelta(days=3, seconds=1),  # older than the TTL: nothing
        at(D1, 23),  # before any row is known
    ]
    entities = pl.DataFrame({"customer_id": [1] * len(times), "event_timestamp": times})
    out = get_historical_features(lake, entities, ["customer_rfm:revenue_30d", "customer_rfm:orders_30d"])
    assert out.get_column("customer_rfm__revenue_30d").to_list() == [11.0, 5112.0, 5213.0, None, None]
    assert out.get_column("customer_rfm__orders_30d").to_list() == [1, 3, 4, None, None]


def test_version_and_declaration_are_in_the_table_metadata(small_lake):
    _, lake, _, result = small_lake
    store = lake.store()
    (commit,) = [c for c in store.history(CUSTOMER_RFM.ref) if SPEC_KEY in c.user_metadata][:1]
    assert commit.user_metadata[VERSION_KEY] == "1"
    assert FeatureRegistry.from_lake(lake).view("customer_rfm") == CUSTOMER_RFM
    materialization = result.asset_materializations_for_node("gold__features__customer_rfm")[0]
    assert materialization.metadata["lakehouse/feature_view_version"].value == 1
    assert materialization.metadata["entities_per_day"].value == {str(d): 60 for d in (D1, D2, D3)}


def test_drift_check_warns_on_the_shifted_day_only(small_lake):
    _, _, _, result = small_lake
    checks = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
    drift = checks[("test_spend", DRIFT_CHECK)]
    assert (drift.passed, drift.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert drift.description.startswith("1 feature(s) drifted (PSI > 0.2 vs the previous day): revenue_1d ")
    assert drift.description.endswith("(2024-01-02)")
    assert 0 < drift.metadata["max_psi"].value["orders_1d"] < 0.2  # customer 1 ordered twice on day 2: stable
    # the long windows of customer_rfm are not complete in a three-day lake: nothing is claimed
    rfm = checks[("customer_rfm", DRIFT_CHECK)]
    assert rfm.passed and rfm.description == "not judged: warming_up (no drift can be claimed yet)"
    assert checks[("customer_rfm", "unique_key")].passed


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_online_values_equal_the_point_in_time_join_and_erasure_removes_them(small_lake, kind):
    settings, lake, _, _ = small_lake
    if kind == "redis":
        require(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    # each test lake has its own Redis namespace (from its warehouse URI); start and end clean
    online = settings.with_overrides(online_store=kind)
    clear_online_store(online)
    assert erase(online, column="customer_id", values=[1]) == {}  # nothing materialised: nothing to remove
    keys = [*CUSTOMERS, 999]
    try:
        for as_of in (at(D2, 12), at(D3) + dt.timedelta(days=1)):
            (entry,) = materialize_online(online, [CUSTOMER_RFM], as_of=as_of, lake=lake)
            assert (entry.rows, entry.as_of) == (len(CUSTOMERS), as_of)
            served = get_online_features(online, "customer", keys)
            offline = get_historical_features(
                lake, pl.DataFrame({"customer_id": keys, "event_timestamp": [as_of] * len(keys)}), ["customer_rfm"]
            )
            assert served.to_dict() == offline.drop("event_timestamp").to_dict(as_series=False)
            assert served.values["customer_rfm__revenue_30d"][-1] is None  # unknown customer
        assert erase(online, column="customer_id", values=[1, "2", 999]) == {"customer_rfm": 2}
        assert erase(online, column="customer_id", values=[1]) == {"customer_rfm": 0}
        assert erase(online, column="email", values=["x@example.org"]) == {}
        after = get_online_features(online, "customer", [1, 2, 3], ["customer_rfm:orders_30d"])
        assert after.values == {"customer_rfm__orders_30d": [None, None, 3]}
        assert [s["rows"] for s in online_store(online).status()] == [len(CUSTOMERS) - 2]
    finally:
        clear_online_store(online)
    if kind == "redis":
        import redis

        from lakehouse.features.online import redis_namespace

        leftovers = list(redis.Redis.from_url(online.redis_url).scan_iter(match=f"{redis_namespace(online)}*"))
        assert leftovers == []


def test_materialize_online_defaults_to_the_newest_complete_values(small_lake):
    settings, lake, _, _ = small_lake
    online = settings.with_overrides(online_store="sqlite")
    clear_online_store(online)
    try:
        (entry,) = materialize_online(online, [CUSTOMER_RFM], lake=lake)  # now is long after the data
        assert entry.as_of == entry.newest_event_timestamp == at(D3) + dt.timedelta(days=1)
        assert get_online_features(online, "customer", [1], ["customer_rfm:revenue_30d"]).values == {
            "customer_rfm__revenue_30d": [5213.0]
        }
    finally:
        clear_online_store(online)
