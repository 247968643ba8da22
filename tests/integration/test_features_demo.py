"""The feature assets `lakehouse demo` materialised (daily views, the nightly training set and
online push) hold what an independent computation from silver says, in both table formats."""

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

import polars as pl
from conftest import DEMO_DAYS

from lakehouse.features.spec import SPEC_KEY, VERSION_KEY
from lakehouse.naming import TableRef

VIEWS = ("customer_basket", "customer_rfm", "customer_web_activity", "product_popularity", "store_daily_traffic")


def silver(lake, name):
    ref = TableRef("silver", "retail", name)
    return lake.existing_store(ref).read(ref).collect()


def features(lake, view, day=None):
    ref = TableRef("gold", "features", view)
    frame = lake.existing_store(ref).read(ref).collect()
    return frame if day is None else frame.filter(pl.col("feature_date") == day)


def last_day(demo):
    return demo.settings.start_date + dt.timedelta(days=DEMO_DAYS - 1)


def sessions_per_customer(events, first, last):
    """Sessions (30 minutes without an event, or midnight, ends one) started on first..last, by customer."""
    by_customer = defaultdict(list)
    for e in events.filter(pl.col("customer_id").is_not_null()).iter_rows(named=True):
        by_customer[e["customer_id"]].append((e["event_ts"], e["event_id"]))
    out = defaultdict(int)
    for customer, stamps in by_customer.items():
        previous = None
        for ts, _ in sorted(stamps):
            starts = previous is None or ts - previous > dt.timedelta(minutes=30) or ts.date() != previous.date()
            if starts and first <= ts.date() <= last:
                out[customer] += 1
            previous = ts
    return out


def test_every_feature_view_ran_every_day_with_its_checks_and_version(demo):
    checks = [c for c in demo.daily_checks if c["check"].startswith("gold/features/")]
    assert len(checks) == len(VIEWS) * 2 * DEMO_DAYS
    assert all(c["passed"] for c in checks), [c for c in checks if not c["passed"]]
    # five days are too few to judge a 7-day window, and 6 stores too few rows: nothing is claimed
    assert {c["description"].split(" (")[0] for c in checks if c["check"].endswith(":feature_drift")} <= {
        "not judged: warming_up",
        "not judged: too_few_rows, warming_up",
    }
    nightly = [r for r in demo.summary["checks"] if ".." in r["partition"] or r["partition"] == "-"]
    assert demo.summary["failed_runs"] == [] and demo.summary["runs"] > DEMO_DAYS, nightly
    lake = demo.lake
    for view in VIEWS:
        ref = TableRef("gold", "features", view)
        commit = next(c for c in lake.existing_store(ref).history(ref) if SPEC_KEY in c.user_metadata)
        assert commit.user_metadata[VERSION_KEY] == "1"
        assert json.loads(commit.user_metadata[SPEC_KEY])["name"] == view


def test_customer_features_equal_a_recomputation_from_silver(demo):
    lake, day = demo.lake, last_day(demo)
    orders = silver(lake, "orders").filter(pl.col("order_date") <= day)
    expected = {}
    for customer, group in orders.group_by("customer_id"):
        totals = group.get_column("order_total").to_list()
        expected[customer[0]] = {
            "orders_30d": group.height,
            "revenue_30d": sum(totals, Decimal(0)),
            "recency_days": (day - group.get_column("order_date").max()).days,
        }
    rfm = features(lake, "customer_rfm", day)
    got = {
        r["customer_id"]: {
            "orders_30d": r["orders_30d"],
            "revenue_30d": Decimal(str(r["revenue_30d"])),
            "recency_days": r["recency_days"],
        }
        for r in rfm.iter_rows(named=True)
    }
    assert got == expected and len(got) > 100
    assert rfm.select((pl.col("orders_365d") == pl.col("orders_30d")).all()).item()  # five days of data

    lines = silver(lake, "order_lines").join(orders.select("order_id", "customer_id"), on="order_id")
    baskets = features(lake, "customer_basket", day)
    for r in baskets.iter_rows(named=True):
        mine = lines.filter(pl.col("customer_id") == r["customer_id"])
        per_order = mine.group_by("order_id").agg(pl.col("net_amount").sum()).get_column("net_amount")
        assert r["baskets_90d"] == per_order.len()
        assert Decimal(str(r["max_basket_value_90d"])) == max(per_order.to_list())
        assert r["distinct_products_90d"] == mine.get_column("product_id").n_unique()

    events = silver(lake, "events").filter(pl.col("event_date") <= day)
    sessions = sessions_per_customer(events, day - dt.timedelta(days=6), day)
    web = features(lake, "customer_web_activity", day)
    assert dict(web.select("customer_id", "sessions_7d").iter_rows()) == dict(sessions)
    views = events.filter(pl.col("event_type") == "page_view").group_by("customer_id").len()
    got_views = dict(web.select("customer_id", "page_views_7d").iter_rows())
    assert {k: v for k, v in got_views.items() if v} == dict(views.drop_nulls().iter_rows())


def test_product_and_store_features_equal_a_recomputation_from_silver(demo):
    lake, day = demo.lake, last_day(demo)
    week = (day - dt.timedelta(days=6), day)
    lines = silver(lake, "order_lines").filter(pl.col("order_date").is_between(*week))
    units = defaultdict(int, dict(lines.group_by("product_id").agg(pl.col("quantity").sum()).iter_rows()))
    requests = silver(lake, "web_requests").filter(
        pl.col("log_date").is_between(*week) & pl.col("product_id").is_not_null() & ~pl.col("is_bot")
    )
    page_views = defaultdict(int, dict(requests.group_by("product_id").len().iter_rows()))
    carts = defaultdict(int)
    for e in silver(lake, "events").filter(pl.col("event_type") == "add_to_cart").iter_rows(named=True):
        for item in e["items"]:
            carts[item["product_id"]] += 1
    products = features(lake, "product_popularity", day)
    assert products.height > 0
    for r in products.iter_rows(named=True):
        pid = r["product_id"]
        assert (r["units_sold_7d"], r["page_views_7d"], r["add_to_cart_7d"]) == (
            units[pid],
            page_views[pid],
            carts[pid],
        )
        assert r["return_rate_30d"] == (0.0 if units[pid] else None)  # the simulator returns nothing

    daily = silver(lake, "orders").group_by("order_date", "store_id").len()
    stores = features(lake, "store_daily_traffic").sort("feature_date", "store_id")
    for r in stores.iter_rows(named=True):
        on_day = daily.filter((pl.col("order_date") == r["feature_date"]) & (pl.col("store_id") == r["store_id"]))
        week_of = daily.filter(
            pl.col("order_date").is_between(r["feature_date"] - dt.timedelta(days=6), r["feature_date"])
            & (pl.col("store_id") == r["store_id"])
        )
        assert r["orders_1d"] == (on_day.get_column("len").sum() if on_day.height else 0)
        assert r["orders_7d"] == week_of.get_column("len").sum()


def test_training_set_labels_and_features_are_point_in_time(demo):
    lake, day = demo.lake, last_day(demo)
    orders = silver(lake, "orders").sort("customer_id", "order_ts", "order_id")
    training = features(lake, "customer_reorder_training")
    assert training.height == orders.height
    observed_until = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    expected = {}
    for (customer,), group in orders.group_by("customer_id"):
        stamps = group.sort("order_ts", "order_id").select("order_id", "order_ts").rows()
        for i, (order_id, ts) in enumerate(stamps):
            nxt = stamps[i + 1][1] if i + 1 < len(stamps) else None
            if nxt is not None and nxt - ts <= dt.timedelta(days=30):
                expected[order_id] = True
            else:
                expected[order_id] = False if ts + dt.timedelta(days=30) <= observed_until else None
    assert dict(training.select("order_id", "reordered_within_30d").iter_rows()) == expected
    assert sum(v is True for v in expected.values()) > 0  # some customers did order again
    # each order sees the customer's RFM row of the day before (its event_timestamp is that midnight)
    rfm = features(lake, "customer_rfm").select("customer_id", "feature_date", "orders_30d")
    previous = dict(((c, d), n) for c, d, n in rfm.iter_rows())
    for r in training.iter_rows(named=True):
        before = r["event_timestamp"].date() - dt.timedelta(days=1)
        assert r["customer_rfm__orders_30d"] == previous.get((r["customer_id"], before)), r


def test_cli_serves_the_online_values_of_the_last_partition(demo):
    lake, day = demo.lake, last_day(demo)
    rfm = features(lake, "customer_rfm", day).sort("customer_id")
    customer = rfm.get_column("customer_id")[0]
    done = demo.cli("features", "get", "customer", str(customer), "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    (row,) = answer["rows"]
    expected = rfm.row(0, named=True)
    assert {k.removeprefix("customer_rfm__"): v for k, v in row.items() if k.startswith("customer_rfm__")} == {
        k: v for k, v in expected.items() if k not in ("customer_id", "event_timestamp", "feature_date")
    }
    newest = (dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)).isoformat()
    assert answer["views"]["customer_rfm"]["as_of"] == newest
    assert answer["views"]["customer_rfm"]["event_timestamps"] == [newest]
    assert set(answer["views"]) == {"customer_basket", "customer_rfm", "customer_web_activity"}
    status = json.loads(demo.cli("features", "status", "--json").stdout)
    assert {v["view"]: v["rows"] for v in status["views"]} == {view: features(lake, view, day).height for view in VIEWS}
    wrong = demo.cli("features", "get", "shopper", "1")
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (
        "error: the online store holds no feature view of entity 'shopper'; entities: customer, product, store"
    )
