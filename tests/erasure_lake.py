"""The small lake the erasure safety tests and the erasure fault-injection trials build: a landing
file (``;``-delimited, with a quarantined record of the subject and one of the other customer),
bronze rows and quarantine, silver customers (two versions), orders and shipments (``shipments``
sorts after ``orders``: a crash between them loses the followed keys unless they are journaled).

The subject is ``ann@x.com``; ``joann@x.com`` (whose address contains the subject's) must be kept.
"""

from __future__ import annotations

from typing import Any

import polars as pl

ANN = "ann@x.com"
JOANN = "joann@x.com"
LANDING_FILE = "shop/customers/2024-01-01/customers.csv"
LANDING = (
    b"customer_id;email;name\n"
    b"1;ann@x.com;Ann\n"
    b"2;joann@x.com;Jo Ann\n"
    b"1;ann@x.com;Ann;ragged\n"  # quarantined: the subject's
    b"2;joann@x.com;Jo;ragged\n"  # quarantined: someone else's, whose e-mail contains the subject's
)
#: the landing file once the subject's lines are blanked (line numbers of the others kept)
LANDING_ERASED = b"customer_id;email;name\n\n2;joann@x.com;Jo Ann\n\n2;joann@x.com;Jo;ragged\n"
TABLES = (
    "bronze.shop.customers",
    "bronze.shop.customers__quarantine",
    "silver.shop.customers",
    "silver.shop.orders",
    "silver.shop.shipments",
)


def t(name: str) -> Any:
    from lakehouse.naming import TableRef

    return TableRef.parse(name)


def build(settings: Any, store: Any) -> None:
    from lakehouse.ingest.readers import read_file
    from lakehouse.naming import join_uri
    from lakehouse.storage import write_bytes

    write_bytes(settings, join_uri(settings.landing, LANDING_FILE), LANDING)
    read = read_file(LANDING, source=LANDING_FILE)
    assert read.rows.height == 2 and read.quarantine.height == 2
    stamp = pl.lit(LANDING_FILE).alias("_source_file")
    store.append(t("bronze.shop.customers"), read.rows.with_columns(stamp))
    store.append(t("bronze.shop.customers__quarantine"), read.quarantine.with_columns(stamp))
    customers = pl.DataFrame({"customer_id": [1, 2], "email": [ANN, JOANN]})
    store.merge(t("silver.shop.customers"), customers.head(1), keys=["customer_id"])
    store.merge(t("silver.shop.customers"), customers, keys=["customer_id"])  # two versions
    store.append(t("silver.shop.orders"), pl.DataFrame({"order_id": [100, 200], "customer_id": [1, 2]}))
    store.append(
        t("silver.shop.shipments"), pl.DataFrame({"order_id": [100, 100, 200], "carrier": ["dhl", "ups", "dhl"]})
    )


def read(store: Any, name: str) -> pl.DataFrame:
    return store.read(t(name)).collect()


def erased_state_problems(settings: Any, store: Any) -> list[str]:
    """What differs from the erased state: the subject gone everywhere, everyone else kept exactly."""
    from lakehouse.naming import join_uri
    from lakehouse.storage import read_bytes

    expected: dict[str, Any] = {
        "bronze.shop.customers email": [JOANN],
        "bronze.shop.customers__quarantine _raw": ["2;joann@x.com;Jo;ragged"],
        "silver.shop.customers": [(2, JOANN)],
        "silver.shop.orders": [(200, 2)],
        "silver.shop.shipments": [(200, "dhl")],
    }
    problems = []
    for what, want in expected.items():
        name, _, column = what.partition(" ")
        frame = read(store, name)
        got = frame.get_column(column).to_list() if column else frame.rows()
        if got != want:
            problems.append(f"{what}: {got!r}, expected {want!r}")
    landing = read_bytes(settings, join_uri(settings.landing, LANDING_FILE))
    if landing != LANDING_ERASED:
        problems.append(f"landing file {LANDING_FILE}: {landing!r}")
    return problems
