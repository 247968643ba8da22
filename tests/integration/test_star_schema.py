"""SCD2 dimensions and as-of fact resolution on real Delta and Iceberg tables."""

import datetime as dt

import polars as pl

from assets.retail.gold import DIMENSIONS, resolve_as_of
from lakehouse.modeling.keys import FIRST_VERSION, UNKNOWN_SK, surrogate_key
from lakehouse.modeling.scd2 import MAX_TS, MIN_TS, scd2_merge
from lakehouse.naming import TableRef

DIM = next(d for d in DIMENSIONS if d.name == "dim_customer")
REF = TableRef("gold", "test", "dim_customer")
CUSTOMER = {
    "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com", "phone": "+49 1", "birth_date": dt.date(1990, 1, 1),
    "street": "Hauptstraße 1", "city": "Berlin", "postcode": "10115", "region": "Berlin", "country": "DE",
    "signup_date": dt.date(2023, 6, 1),
}  # fmt: skip


def at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour, tzinfo=dt.UTC)


def snapshot(*rows: dict) -> pl.DataFrame:
    columns = ["customer_id", *DIM.spec.attributes, "updated_at"]
    return (
        pl.DataFrame([{**CUSTOMER, **r} for r in rows])
        .select(columns)
        .with_columns(pl.col("updated_at").cast(pl.Datetime("us", "UTC")))
    )


WEEK = [
    snapshot(
        {"customer_id": 1, "segment": "consumer", "updated_at": at(1, 9)},
        {"customer_id": 2, "segment": "corporate", "updated_at": at(1, 9)},
    ),
    snapshot(
        {"customer_id": 1, "segment": "small_business", "updated_at": at(2, 10)},
        {"customer_id": 2, "segment": "corporate", "updated_at": at(1, 9)},
    ),
    snapshot(
        {"customer_id": 1, "segment": "small_business", "updated_at": at(2, 10)},
        {"customer_id": 2, "segment": "corporate", "updated_at": at(1, 9)},
    ),
    # a correction of the e-mail only (type 1) and a second segment change
    snapshot(
        {"customer_id": 1, "segment": "corporate", "email": "ann.lee@example.com", "updated_at": at(4, 15)},
        {"customer_id": 2, "segment": "corporate", "updated_at": at(1, 9)},
    ),
    snapshot(
        {"customer_id": 1, "segment": "corporate", "email": "ann.lee@example.com", "updated_at": at(4, 15)},
        {"customer_id": 2, "segment": "corporate", "updated_at": at(1, 9)},
        {"customer_id": 3, "segment": "consumer", "updated_at": at(5, 8)},
    ),
]


def apply_week(store, inferred_on_day: dict[int, list[int]] | None = None):
    results = []
    for day, snap in enumerate(WEEK, start=1):
        results.append(scd2_merge(store, REF, snap, DIM.spec, inferred_keys=(inferred_on_day or {}).get(day, [])))
    return results


def test_two_segment_changes_give_three_contiguous_versions(store):
    apply_week(store)
    versions = store.read(REF).collect().filter(pl.col("customer_id") == 1).sort("valid_from")
    assert versions.get_column("segment").to_list() == ["consumer", "small_business", "corporate"]
    assert versions.get_column("valid_from").to_list() == [MIN_TS, at(2, 10), at(4, 15)]
    assert versions.get_column("valid_to").to_list() == [at(2, 10), at(4, 15), MAX_TS]
    assert versions.get_column("is_current").to_list() == [False, False, True]
    # the e-mail correction is type 1: every version carries it
    assert set(versions.get_column("email")) == {"ann.lee@example.com"}
    assert versions.get_column("customer_sk").n_unique() == 3
    assert versions.get_column("customer_sk")[0] == surrogate_key(1, FIRST_VERSION)
    unknown = store.read(REF).collect().filter(pl.col("customer_sk") == UNKNOWN_SK)
    assert unknown.height == 1 and unknown.get_column("segment").item() == "unknown"


def test_an_order_between_the_changes_joins_the_middle_version(store):
    apply_week(store)
    dim = store.read(REF).collect()
    facts = pl.DataFrame(
        {"order_id": [10, 11, 12, 13], "customer_id": [1, 1, 1, None], "order_ts": [at(1), at(3), at(5), at(3)]},
        schema_overrides={"order_ts": pl.Datetime("us", "UTC")},
    )
    out = resolve_as_of(facts, dim, key="customer_id", sk="customer_sk", at="order_ts", keep=["segment"])
    assert out.get_column("segment").to_list() == ["consumer", "small_business", "corporate", None]
    middle = (
        dim.filter((pl.col("customer_id") == 1) & (pl.col("segment") == "small_business"))
        .get_column("customer_sk")
        .item()
    )
    assert out.get_column("customer_sk").to_list()[1] == middle
    assert out.get_column("customer_sk").to_list()[3] == UNKNOWN_SK


def test_a_fact_before_its_customer_gets_an_inferred_member_completed_in_place(store):
    # day 2: an order of customer 3, who is only in the CRM snapshot of day 5
    apply_week(store, inferred_on_day={2: [3]})
    rows = store.read(REF).collect().filter(pl.col("customer_id") == 3)
    assert rows.height == 1  # completed, not duplicated
    row = rows.row(0, named=True)
    assert (row["is_inferred"], row["segment"], row["customer_sk"]) == (
        False,
        "consumer",
        surrogate_key(3, FIRST_VERSION),
    )
    assert row["valid_from"] == MIN_TS  # the order placed before the customer row still resolves


def test_an_inferred_member_exists_until_the_row_arrives(store):
    scd2_merge(store, REF, WEEK[0], DIM.spec, inferred_keys=[42])
    placeholder = store.read(REF).collect().filter(pl.col("customer_id") == 42).row(0, named=True)
    assert placeholder["is_inferred"] and placeholder["is_current"] and placeholder["segment"] is None
    assert placeholder["customer_sk"] == surrogate_key(42, FIRST_VERSION)


def test_replaying_a_whole_week_is_a_no_op(store):
    apply_week(store, inferred_on_day={2: [3]})
    before, version = store.read(REF).collect().sort("customer_sk"), store.version(REF)
    replay = apply_week(store, inferred_on_day={2: [3]})
    assert [r.operation for r in replay] == ["NOOP"] * len(WEEK)
    assert store.version(REF) == version
    assert store.read(REF).collect().sort("customer_sk").equals(before)


def test_late_and_out_of_order_snapshots_slot_into_history(store):
    # apply day 4 first, then days 1 and 2: the history is the same as in order
    for snap in (WEEK[3], WEEK[0], WEEK[1]):
        scd2_merge(store, REF, snap, DIM.spec)
    versions = store.read(REF).collect().filter(pl.col("customer_id") == 1).sort("valid_from")
    assert versions.get_column("segment").to_list() == ["consumer", "small_business", "corporate"]
    assert versions.get_column("valid_to").to_list() == [at(2, 10), at(4, 15), MAX_TS]
