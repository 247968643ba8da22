import datetime as dt
import hashlib
from decimal import Decimal

import polars as pl

from lakehouse.ingest.csv_reader import read_csv
from lakehouse.ingest.lineage import row_hash
from lakehouse.ingest.readers import read_file
from lakehouse.settings import get_settings
from lakehouse.simulator import SimulationConfig, generate


def _digest(folder):
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.csv")):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_simulator_is_deterministic_by_seed(tmp_path):
    config = SimulationConfig(start=dt.date(2024, 1, 1), days=4, seed=5)
    a = generate(get_settings({"LAKEHOUSE_HOME": str(tmp_path / "a")}), config)
    b = generate(get_settings({"LAKEHOUSE_HOME": str(tmp_path / "b")}), config)
    c = generate(
        get_settings({"LAKEHOUSE_HOME": str(tmp_path / "c")}),
        SimulationConfig(start=dt.date(2024, 1, 1), days=4, seed=6),
    )
    assert a == b and a != c
    assert _digest(tmp_path / "a" / "landing") == _digest(tmp_path / "b" / "landing")


def test_truth_agrees_with_the_files(tmp_path):
    settings = get_settings({"LAKEHOUSE_HOME": str(tmp_path)})
    truth = generate(settings, SimulationConfig(start=dt.date(2024, 1, 1), days=5, seed=1, scale=2))
    for relative, counts in truth["files"].items():
        if relative.startswith("_simulator"):
            continue
        result = read_file((tmp_path / "landing" / relative).read_bytes(), source=relative)
        assert result.rows_read == counts["records"], relative
        assert result.quarantine.height == counts["bad"], relative
    for day, revenue in truth["orders"]["revenue_per_day"].items():
        frames = [
            read_file(p.read_bytes(), source=p.name).rows
            for p in sorted((tmp_path / "landing" / "retail" / "orders" / day).iterdir())
        ]
        orders = pl.concat(frames, how="diagonal").sort("updated_at").unique("order_id", keep="last")
        assert orders.height == truth["orders"]["distinct_orders_per_day"][day]
        assert sum(Decimal(a) for a in orders.get_column("order_total")) == Decimal(revenue)
    assert truth["customers"]["segment_changes"] and truth["customers"]["moves"]
    assert (tmp_path / "landing" / "retail" / "orders" / "2024-01-02" / "orders_2024-01-02_late.csv").is_file()


def test_csv_reader_quarantines_ragged_rows_with_line_numbers():
    data = b'a,b,c\n1,2,3\n\n4,5\n6,7,8,9\n"x,y",2,3\n'
    result = read_csv(data, source="f.csv")
    assert result.rows.select("a", "_source_line").to_dicts() == [
        {"a": "1", "_source_line": 2},
        {"a": "x,y", "_source_line": 6},
    ]
    assert result.quarantine.select("_source_line", "_reason").to_dicts() == [
        {"_source_line": 4, "_reason": "expected 3 fields, found 2"},
        {"_source_line": 5, "_reason": "expected 3 fields, found 4"},
    ]
    assert result.rows_read == 4


def test_row_hash_is_stable_and_distinguishes_null_from_empty():
    frame = pl.DataFrame({"a": ["x", "x", None, ""], "b": ["1", "1", "2", "2"]})
    hashes = row_hash(frame, ["a", "b"]).to_list()
    assert hashes[0] == hashes[1] == hashlib.md5(b"x\x1f1").hexdigest()
    assert hashes[2] != hashes[3]


def test_silver_conform_keeps_the_latest_version_and_quarantines_bad_rows():
    from assets.retail.silver import BY_NAME
    from lakehouse.modeling.conform import conform

    day = dt.date(2024, 1, 1)
    bronze = pl.DataFrame(
        {
            "order_id": ["1", "1", "2", "3", "4"],
            "order_ts": [
                "2024-01-01T10:00:00Z",
                "2024-01-01T10:00:00Z",
                "2024-01-01T11:00:00Z",
                "2024-01-02T00:00:01Z",
                "2024-01-01T09:00:00Z",
            ],
            "customer_id": ["7", "7", "8", "9", "x"],
            "store_id": ["1", "1", "2", "2", "2"],
            "channel": ["web", "web", None, "app", "web"],
            "status": ["completed", "corrected", " Completed ", "completed", "completed"],
            "currency": ["eur", "EUR", "EUR", "EUR", "EUR"],
            "order_total": ["10.00", "12.50", "5.00", "1.00", "2.00"],
            "ship_city": [" Berlin", "Berlin", "Paris", "Rome", "Oslo"],
            "updated_at": [
                "2024-01-01T10:00:00Z",
                "2024-01-01T12:00:00Z",
                "2024-01-01T11:00:00Z",
                "2024-01-02T00:00:01Z",
                "2024-01-01T09:00:00Z",
            ],
            "_source_file": ["f"] * 5,
            "_source_line": [2, 3, 4, 5, 6],
            "_row_hash": ["h"] * 5,
            "_partition_date": [day] * 5,
        }
    )
    result = conform(bronze, BY_NAME["orders"].spec)
    silver, quarantine, duplicates = result.rows, result.rejected, result.duplicates
    assert duplicates == 1
    assert silver.select("order_id", "order_total", "status", "currency", "ship_city").sort("order_id").to_dicts() == [
        {
            "order_id": 1,
            "order_total": Decimal("12.50"),
            "status": "corrected",
            "currency": "EUR",
            "ship_city": "Berlin",
        },
        {"order_id": 2, "order_total": Decimal("5.00"), "status": "completed", "currency": "EUR", "ship_city": "Paris"},
    ]
    reasons = dict(zip(quarantine.get_column("_source_line"), quarantine.get_column("_reason")))
    assert reasons == {
        5: "order_date 2024-01-02 is outside partition 2024-01-01",
        6: "column customer_id: x does not fit int64",
    }


def test_order_ids_are_unique_across_a_quarter_including_the_late_file(tmp_path):
    """The late orders once took ids 9_000_001.. that the regular orders of day 91 also took, so a
    year backfill saw duplicate keys in silver. Every order id belongs to exactly one day."""
    settings = get_settings({"LAKEHOUSE_HOME": str(tmp_path)})
    truth = generate(settings, SimulationConfig(start=dt.date(2024, 1, 1), days=95, seed=7, scale=0.2))
    day_of: dict[int, set[str]] = {}
    for path in sorted((tmp_path / "landing" / "retail" / "orders").rglob("*.csv")):
        ids = read_file(path.read_bytes(), source=path.name).rows.get_column("order_id").cast(pl.Int64)
        for order_id in ids.unique().to_list():
            day_of.setdefault(order_id, set()).add(path.parent.name)
    assert {i: d for i, d in day_of.items() if len(d) > 1} == {}
    assert len(day_of) == sum(truth["orders"]["distinct_orders_per_day"].values())
    late = read_file(
        (tmp_path / "landing/retail/orders/2024-01-02/orders_2024-01-02_late.csv").read_bytes(), source="late"
    ).rows.get_column("order_id")
    assert late.to_list() == ["199001", "199002", "199003"]
