"""The feature store's pure parts: declarations, references, windows, the point-in-time join,
PSI, the online record format and the embedded online store."""

import datetime as dt
import math

import polars as pl
import pytest

from lakehouse.features.codec import Layout, LayoutMismatch
from lakehouse.features.drift import evaluate_drift, psi
from lakehouse.features.exceptions import (
    EntityDataError,
    FeatureDefinitionError,
    FeatureOutputError,
    OnlineStoreError,
    UnknownFeatureError,
)
from lakehouse.features.offline import historical_features
from lakehouse.features.registry import FeatureRegistry
from lakehouse.features.spec import Entity, Feature, FeatureSource, FeatureView
from lakehouse.features.windows import conform_output, event_timestamp_of, trailing_windows
from lakehouse.naming import TableRef

UTC = dt.UTC
D1, D2, D3 = dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 3)
CUSTOMER = Entity("customer", "customer_id", "int64", "A customer.")


def view(name="spend", *, ttl=dt.timedelta(days=2), features=None, version=1, **extra):
    return FeatureView(
        name=name,
        entity=CUSTOMER,
        features=features
        or [
            Feature("orders_1d", "int64", "Orders that day.", 1),
            Feature("revenue_1d", "float64", "Revenue that day.", 1),
        ],
        ttl=ttl,
        owner="team:ml",
        version=version,
        description="Test view.",
        sources=[FeatureSource(TableRef("silver", "retail", "orders"), ["customer_id", "order_date"], "order_date")],
        **extra,
    )


def ts(day, hour=0, **kw):
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=UTC) + dt.timedelta(**kw)


# -- declarations -----------------------------------------------------------------------------------


def test_declaration_errors_name_the_view_and_the_field():
    with pytest.raises(FeatureDefinitionError, match=r"feature view 'spend': feature name 'orders_1d' is used twice"):
        view(features=[Feature("orders_1d", "int64", "a"), Feature("orders_1d", "int64", "b")])
    with pytest.raises(FeatureDefinitionError, match=r"feature view 'spend': feature name 'Bad' is not snake_case"):
        view(features=[Feature("Bad", "int64", "a")])
    with pytest.raises(FeatureDefinitionError, match=r"feature 'x' has type 'decimal'; accepted: int64, float64"):
        view(features=[Feature("x", "decimal", "a")])
    with pytest.raises(FeatureDefinitionError, match=r"ttl must be positive, got 0:00:00"):
        view(ttl=dt.timedelta(0))
    with pytest.raises(FeatureDefinitionError, match=r"version must be an integer >= 1, got 0"):
        view(version=0)
    with pytest.raises(FeatureDefinitionError, match=r"window_days=30, outside 1..lookback_days \(1\)"):
        view(features=[Feature("x", "int64", "a", 30)])
    with pytest.raises(FeatureDefinitionError, match=r"clashes with the join key"):
        view(features=[Feature("customer_id", "int64", "a")])


def test_declaration_round_trips_through_the_table_metadata():
    original = view(features=[Feature("x", "float64", "X.", 1, [(("silver", "retail", "orders"), "order_total")])])
    again = FeatureView.from_json(original.commit_metadata()["lakehouse.feature_view"])
    assert again == original
    assert original.commit_metadata()["lakehouse.feature_view.version"] == "1"
    with pytest.raises(FeatureDefinitionError, match=r"not a feature view declaration \(KeyError: 'entity'\)"):
        FeatureView.from_dict({"name": "x"})


def test_references_resolve_by_view_in_request_order():
    spend, other = view(), view("other", features=[Feature("a", "int64", "A.")])
    registry = FeatureRegistry([spend, other])
    assert registry.resolve(["other", "spend:revenue_1d", "spend:orders_1d", "spend:revenue_1d"]) == [
        (other, ["a"]),
        (spend, ["revenue_1d", "orders_1d"]),
    ]
    with pytest.raises(UnknownFeatureError, match=r"no feature view 'nope'; registered: other, spend"):
        registry.resolve(["nope:x"])
    with pytest.raises(
        UnknownFeatureError, match=r"feature view 'spend' has no feature 'x'; it has: orders_1d, revenue_1d"
    ):
        registry.resolve(["spend:x"])
    with pytest.raises(UnknownFeatureError, match=r"no feature view describes entity 'shop'; entities: customer"):
        registry.views_for("shop")


def test_entity_keys_parse_to_the_join_key_type():
    assert CUSTOMER.parse_key("42") == 42 and CUSTOMER.parse_key(7) == 7
    with pytest.raises(FeatureDefinitionError, match=r"entity 'customer': key 'x1' is not an integer customer_id"):
        CUSTOMER.parse_key("x1")


# -- building rows -----------------------------------------------------------------------------------


def test_trailing_windows_cover_d_minus_w_plus_1_to_d_and_record_the_day_an_entity_leaves():
    events = pl.DataFrame(
        {"customer_id": [1, 1, 2, 1], "day": [D1, D2, D2, D3 + dt.timedelta(days=5)], "amount": [1.0, 2.0, 5.0, 9.0]}
    )
    rows = trailing_windows(
        events,
        key="customer_id",
        day="day",
        days=[D2, D3, D3 + dt.timedelta(days=1)],
        windows={1: [pl.len().alias("n_1d")], 2: [pl.col("amount").sum().alias("sum_2d")]},
        zero=["n_1d", "sum_2d"],
    ).sort("feature_date", "customer_id")
    assert rows.to_dicts() == [
        {"customer_id": 1, "n_1d": 1, "sum_2d": 3.0, "feature_date": D2},
        {"customer_id": 2, "n_1d": 1, "sum_2d": 5.0, "feature_date": D2},
        {"customer_id": 1, "n_1d": 0, "sum_2d": 2.0, "feature_date": D3},
        {"customer_id": 2, "n_1d": 0, "sum_2d": 5.0, "feature_date": D3},
        # D4: nothing in the 2-day window, but they had one as of D3: a last row of zeros
        {"customer_id": 1, "n_1d": 0, "sum_2d": 0.0, "feature_date": D3 + dt.timedelta(days=1)},
        {"customer_id": 2, "n_1d": 0, "sum_2d": 0.0, "feature_date": D3 + dt.timedelta(days=1)},
    ]


def test_output_is_checked_against_the_declaration_and_stamped_the_next_midnight():
    spend = view()
    good = pl.DataFrame({"customer_id": [2, 1], "feature_date": [D1, D1], "orders_1d": [1, 2], "revenue_1d": [1, 2]})
    out = conform_output(spend, good, [D1])
    assert out.columns == ["customer_id", "event_timestamp", "feature_date", "orders_1d", "revenue_1d"]
    assert out.get_column("customer_id").to_list() == [1, 2]
    assert out.get_column("event_timestamp").to_list() == [ts(D2), ts(D2)] == [event_timestamp_of(D1)] * 2
    assert out.schema["revenue_1d"] == pl.Float64
    with pytest.raises(FeatureOutputError, match=r"missing: revenue_1d; undeclared: extra"):
        conform_output(spend, good.drop("revenue_1d").with_columns(extra=pl.lit(1)), [D1])
    with pytest.raises(FeatureOutputError, match=r"row 1, column 'orders_1d': 'many' is not a Int64"):
        conform_output(spend, good.with_columns(pl.Series("orders_1d", ["1", "many"])), [D1])
    with pytest.raises(FeatureOutputError, match=r"2 row\(s\) have feature_date outside the partitions"):
        conform_output(spend, good, [D2])
    with pytest.raises(
        FeatureOutputError,
        match=r"1 customer_id/feature_date pair\(s\) occur more than once, e.g. customer_id=2 on 2024-03-01",
    ):
        conform_output(spend, pl.concat([good, good.head(1)]), [D1])
    assert conform_output(spend, pl.DataFrame(), [D1]).columns == out.columns


# -- point in time -----------------------------------------------------------------------------------


def _pit(entity_rows, table, spend):
    def read(v, wanted, start, end):
        return (
            table.lazy()
            .filter(pl.col("event_timestamp").is_between(start, end))
            .select("customer_id", "event_timestamp", *wanted)
        )

    return historical_features(entity_rows, FeatureRegistry([spend]).resolve(["spend"]), read)


def test_point_in_time_join_never_returns_a_future_value_and_respects_the_ttl():
    spend = view()
    # customer 1: day-1 value 10, day-2 value 99 (known only from D3 00:00); customer 2: day 1 only
    table = conform_output(
        spend,
        pl.DataFrame(
            {
                "customer_id": [1, 1, 2],
                "feature_date": [D1, D2, D1],
                "orders_1d": [1, 9, 3],
                "revenue_1d": [10.0, 99.0, 30.0],
            }
        ),
        [D1, D2],
    )
    at = [
        (1, ts(D2, 0) - dt.timedelta(microseconds=1)),  # before day 1 is complete: nothing
        (1, ts(D2, 0)),  # the moment day 1 is known
        (1, ts(D2, 23, minutes=59)),  # day 2 has happened, but is not complete: still day 1
        (1, ts(D3, 0)),  # day 2 known
        (2, ts(D2, 0) + dt.timedelta(days=2)),  # exactly the TTL old: still valid
        (2, ts(D2, 0) + dt.timedelta(days=2, microseconds=1)),  # older than the TTL: gone
        (3, ts(D3, 0)),  # unknown customer
    ]
    entities = pl.DataFrame(
        {"customer_id": [k for k, _ in at], "event_timestamp": [t for _, t in at], "label": range(7)}
    )
    out = _pit(entities.reverse(), table, spend).reverse()  # row order is kept, whatever it is
    assert out.get_column("label").to_list() == list(range(7))
    assert out.get_column("spend__revenue_1d").to_list() == [None, 10.0, 10.0, 99.0, 30.0, None, None]
    assert out.get_column("spend__orders_1d").to_list() == [None, 1, 1, 9, 3, None, None]


def test_entity_rows_are_validated_naming_the_row_and_column():
    spend = view()
    table = pl.DataFrame(schema={"customer_id": pl.Int64, "event_timestamp": pl.Datetime("us", "UTC"),
                                 "orders_1d": pl.Int64, "revenue_1d": pl.Float64})  # fmt: skip
    with pytest.raises(EntityDataError, match=r"entity rows have no timestamp column 'event_timestamp'"):
        _pit(pl.DataFrame({"customer_id": [1]}), table, spend)
    with pytest.raises(EntityDataError, match=r"row 1 has no value in column 'event_timestamp'"):
        _pit(pl.DataFrame({"customer_id": [1, 2], "event_timestamp": [ts(D1), None]}), table, spend)
    with pytest.raises(EntityDataError, match=r"row 1, column 'customer_id': 'abc' is not a valid int64 key"):
        _pit(pl.DataFrame({"customer_id": ["1", "abc"], "event_timestamp": [ts(D1), ts(D1)]}), table, spend)
    # naive timestamps are UTC, and string keys that are integers are accepted
    out = _pit(pl.DataFrame({"customer_id": ["1"], "event_timestamp": [dt.datetime(2024, 3, 1)]}), table, spend)
    assert out.columns == ["customer_id", "event_timestamp", "spend__orders_1d", "spend__revenue_1d"]


# -- drift -------------------------------------------------------------------------------------------


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    base = pl.Series([float(i % 50) for i in range(1000)])
    assert psi(base, base) == pytest.approx(0.0, abs=1e-12)
    assert psi(base, base + 0.01) < 0.1
    assert psi(base, base + 25) > 1.0
    assert psi(pl.Series(["a"] * 50 + ["b"] * 50), pl.Series(["a"] * 90 + ["b"] * 10)) > 0.25
    # nulls are a bin of their own: a feature that starts arriving empty drifts
    assert psi(base, pl.Series([None] * 500 + list(range(500)), dtype=pl.Float64)) > 0.25
    with pytest.raises(ValueError, match="at least one value"):
        psi(base, pl.Series([], dtype=pl.Float64))


def test_drift_is_only_judged_on_complete_windows_and_enough_rows():
    spend = view(
        features=[Feature("orders_1d", "int64", "a", 1), Feature("revenue_1d", "float64", "b", 1)],
        drift_min_rows=50,
    )
    ref = pl.DataFrame({"orders_1d": [1] * 100, "revenue_1d": [float(i) for i in range(100)]})
    shifted = ref.with_columns(pl.col("revenue_1d") + 80)
    start = D1
    assert [f.status for f in evaluate_drift(spend, ref, shifted, day=D1, first_day=start).features] == [
        "warming_up",
        "warming_up",
    ]
    report = evaluate_drift(spend, ref, shifted, day=D2, first_day=start)
    assert [(f.feature, f.status) for f in report.features] == [("orders_1d", "stable"), ("revenue_1d", "drift")]
    assert report.drifted[0].psi > 1.0 and report.features[0].psi == 0.0
    small = evaluate_drift(spend, ref.head(10), shifted, day=D2, first_day=start)
    assert {f.status for f in small.features} == {"too_few_rows"}


# -- online records and the embedded store ------------------------------------------------------------


def test_records_round_trip_with_nulls_strings_and_bools_and_detect_a_changed_layout():
    mixed = view(
        features=[
            Feature("n", "int64", "N."),
            Feature("x", "float64", "X."),
            Feature("flag", "bool", "F."),
            Feature("name", "string", "S."),
            Feature("other", "string", "S2."),
        ]
    )
    layout = Layout(mixed)
    record = layout.encode(1_700_000_000_000_001, [-5, None, True, "Zoë", None])
    assert layout.decode(record) == (1_700_000_000_000_001, (-5, None, True, "Zoë", None))
    assert layout.decode(layout.encode(0, [1, 2.5, False, "", "a"])) == (0, (1, 2.5, False, "", "a"))
    with pytest.raises(LayoutMismatch):
        Layout(view(features=mixed.features, version=2)).decode(record)


def test_embedded_store_serves_erases_and_reports_freshness(tmp_path):
    from lakehouse.features.online import OnlineStore
    from lakehouse.settings import get_settings

    settings = get_settings({"LAKEHOUSE_HOME": str(tmp_path)})
    store = OnlineStore(settings)
    with pytest.raises(OnlineStoreError, match=r"online_store.sqlite does not exist yet: run `lakehouse features"):
        store.get("customer", [1])
    assert store.erase(column="customer_id", values=[1]) == {}  # nothing materialised: nothing to remove
    spend = view()
    rows = pl.DataFrame(
        {
            "customer_id": [1, 2],
            "event_timestamp": [ts(D2), ts(D3)],
            "orders_1d": [3, None],
            "revenue_1d": [4.5, 0.1],
        },
        schema_overrides={"event_timestamp": pl.Datetime("us", "UTC")},
    )
    entry = store.write(spend, rows, as_of=ts(D3))
    assert (entry.rows, entry.newest_event_timestamp, entry.oldest_event_timestamp) == (2, ts(D3), ts(D2))
    got = store.get("customer", ["2", 1, 9], ["spend:revenue_1d", "spend:orders_1d"])
    assert got.to_dict() == {
        "customer_id": [2, 1, 9],
        "spend__revenue_1d": [0.1, 4.5, None],
        "spend__orders_1d": [None, 3, None],
    }
    assert got.event_timestamps == {"spend": [ts(D3), ts(D2), None]} and got.versions == {"spend": 1}
    assert store.get("customer", [1]).rows() == [{"customer_id": 1, "spend__orders_1d": 3, "spend__revenue_1d": 4.5}]
    with pytest.raises(UnknownFeatureError, match=r"holds no feature view of entity 'store'; entities: customer"):
        store.get("store", [1])
    with pytest.raises(EntityDataError, match=r"key 'x' is not an integer customer_id"):
        store.get("customer", ["x"])
    # a second process sees the same content
    assert OnlineStore(settings).get("customer", [1]).values["spend__revenue_1d"] == [4.5]
    assert store.erase(column="customer_id", values=[1, "7", "not-a-key"]) == {"spend": 1}
    assert store.erase(column="email", values=["a@b.c"]) == {}
    assert store.get("customer", [1, 2]).values["spend__revenue_1d"] == [None, 0.1]
    (status,) = store.status()
    assert (status["view"], status["rows"], status["version"], status["as_of"]) == ("spend", 1, 1, ts(D3).isoformat())
    assert status["seconds_since_newest_value"] > 0
    # a new version replaces the whole view; readers holding the old layout re-read the registry
    v2 = view(version=2)
    store.write(v2, rows.head(1), as_of=ts(D3))
    stale = OnlineStore(settings)
    stale._entries = {"spend": entry}  # as a long-running reader would still have it
    assert stale.get("customer", [1, 2]).versions == {"spend": 2}
    assert math.isclose(stale.get("customer", [1]).values["spend__revenue_1d"][0], 4.5)
