"""A deterministic retail company: what lands every day, and the truth about it.

Everything is a pure function of :class:`SimulationConfig` (seed, start, days, scale): the same
config writes the same bytes. Per day ``D`` the landing zone receives::

    retail/stores/D/stores.csv                 (first day, and a re-export with changes later)
    retail/customers/D/customers_D.csv         (daily snapshot; some days Latin-1)
    retail/orders/D/orders_D.csv               (corrections, duplicates, nulls, a malformed line,
    retail/order_lines/D/order_lines_D.csv      an added column from day 5, a late file)
    retail/web_logs/D/access.log{,.1,.2.gz}    (combined format, rotated, gzip, truncated lines)
    retail/events/D/events_D.ndjson            (nested clickstream, a malformed line some days)

and the product catalog is served by a local HTTP API (:mod:`lakehouse.simulator.api`) from
the history in ``_simulator/products.json``. ``_simulator/truth.json`` records what was written
and what the lake must end up saying (rows per file, revenue per day, customers changed...).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lakehouse.naming import join_uri
from lakehouse.settings import Settings
from lakehouse.storage import ensure_bucket, read_bytes, write_bytes

__all__ = ["ORDER_COLUMNS", "PRODUCTS_PATH", "TRUTH_PATH", "SimulationConfig", "generate", "load_products"]

TRUTH_PATH = "_simulator/truth.json"
PRODUCTS_PATH = "_simulator/products.json"
_CENT = Decimal("0.01")
ORDER_COLUMNS = [
    "order_id",
    "order_ts",
    "customer_id",
    "store_id",
    "channel",
    "status",
    "currency",
    "order_total",
    "ship_city",
    "updated_at",
]
ORDER_ID_BLOCK = 100_000  # order ids of day index i: i * ORDER_ID_BLOCK + 1 ...
LATE_ORDER_OFFSET = 99_000  # late orders of a day: the top of its block
LINE_COLUMNS = ["order_id", "line_number", "product_id", "quantity", "unit_price", "discount", "updated_at"]
CUSTOMER_COLUMNS = [
    "customer_id", "first_name", "last_name", "email", "phone", "birth_date", "street", "city", "postcode",
    "region", "country", "segment", "signup_date", "updated_at",
]  # fmt: skip
STORE_COLUMNS = ["store_id", "store_name", "city", "region", "country", "store_type", "opened_on"]

_FIRST = [
    "Anna",
    "José",
    "Zoë",
    "Lukas",
    "Chloé",
    "Mia",
    "Noah",
    "Émile",
    "Sofia",
    "Jürgen",
    "Liam",
    "Inès",
    "Ola",
    "Björn",
    "Maria",
    "Tom",
]
_LAST = [
    "Müller",
    "García",
    "Dubois",
    "Smith",
    "Nowak",
    "Rossi",
    "Jensen",
    "Brontë",
    "Kowalski",
    "Núñez",
    "Schmidt",
    "Martin",
]
_CITIES = [
    ("Berlin", "Berlin", "DE", "10115"), ("München", "Bavaria", "DE", "80331"), ("Paris", "Île-de-France", "FR", "75001"),
    ("Lyon", "Auvergne-Rhône-Alpes", "FR", "69001"), ("Madrid", "Madrid", "ES", "28001"), ("Sevilla", "Andalusia", "ES", "41001"),
    ("Milano", "Lombardy", "IT", "20121"), ("Kraków", "Lesser Poland", "PL", "30-001"), ("Århus", "Central Jutland", "DK", "8000"),
]  # fmt: skip
_STREETS = [
    "Hauptstraße",
    "Rue de la Paix",
    "Calle Mayor",
    "Via Roma",
    "Rua Augusta",
    "Strøget",
    "Market Street",
    "Königsallee",
]
_SEGMENTS = ["consumer", "small_business", "corporate"]
_CATEGORIES = ["electronics", "home", "garden", "toys", "books", "sports", "beauty"]
_BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark"]
_CHANNELS = ["web", "store", "app"]
_PAGES = ["/", "/search", "/cart", "/checkout", "/account", "/help"]
_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. ``scale`` multiplies every volume."""

    start: dt.date
    days: int
    seed: int = 7
    scale: float = 1.0

    def n(self, base: int, minimum: int) -> int:
        return max(minimum, round(base * self.scale))

    def day(self, index: int) -> dt.date:
        return self.start + dt.timedelta(days=index)

    def latin1(self, index: int) -> bool:
        """Days whose order and customer files come Latin-1 encoded (an old export tool)."""
        return index % 5 == 2


def _rng(config: SimulationConfig, *parts: object) -> random.Random:
    # str seeds are hashed with SHA-512 by `random`, so this is stable across runs and platforms
    return random.Random(":".join(map(str, (config.seed, *parts))))  # noqa: S311 - simulation, not crypto


def _iso(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(_CENT)


def _csv(header: list[str], rows: list[list[Any]], *, encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue().encode(encoding, errors="replace")


class _Writer:
    """Writes landing files and records what was written."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.files: dict[str, dict[str, int]] = {}

    def write(self, relative: str, data: bytes, *, records: int, bad: int = 0) -> None:
        write_bytes(self.settings, join_uri(self.settings.landing, relative), data)
        self.files[relative] = {"records": records, "bad": bad}


def _stores(config: SimulationConfig) -> list[dict[str, Any]]:
    rng = _rng(config, "stores")
    stores = []
    for i in range(1, config.n(6, 3) + 1):
        city, region, country, _ = _CITIES[(i - 1) % len(_CITIES)]
        stores.append({
            "store_id": i, "store_name": f"{city} {rng.choice(['Central', 'Mall', 'Station', 'Outlet'])}", "city": city,
            "region": region, "country": rng.choice([country, country.lower(), f" {country} "]),
            "store_type": rng.choice(["flagship", "standard", "outlet"]), "opened_on": (config.start - dt.timedelta(days=rng.randint(100, 3000))).isoformat(),
        })  # fmt: skip
    return stores


def _new_customer(rng: random.Random, customer_id: int, signup: dt.date, ts: dt.datetime) -> dict[str, Any]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    city, region, country, postcode = rng.choice(_CITIES)
    return {
        "customer_id": customer_id, "first_name": first, "last_name": last,
        "email": f"{first.lower()}.{last.lower()}{customer_id}@example.com".encode("ascii", "ignore").decode(),
        "phone": f"+49 30 {rng.randint(1000000, 9999999)}", "birth_date": dt.date(rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28)).isoformat(),
        "street": f"{rng.choice(_STREETS)} {rng.randint(1, 200)}", "city": city, "postcode": postcode,
        "country": rng.choice([country, country, country, country.lower()]), "segment": rng.choice(_SEGMENTS),
        "signup_date": signup.isoformat(), "updated_at": _iso(ts), "region": region,
    }  # fmt: skip


def _products(config: SimulationConfig) -> list[dict[str, Any]]:
    """Every version of every product, sorted by updated_at (the API's history)."""
    rng = _rng(config, "products")
    versions: list[dict[str, Any]] = []
    current: dict[int, dict[str, Any]] = {}
    start = _midnight(config.start) - dt.timedelta(days=30)
    for pid in range(1, config.n(60, 10) + 1):
        product = {
            "product_id": pid, "sku": f"SKU-{pid:05d}", "name": f"{rng.choice(['Classic', 'Pro', 'Mini', 'Max'])} {rng.choice(['Lamp', 'Chair', 'Phone', 'Ball', 'Book', 'Kettle'])} {pid}",
            "brand": rng.choice(_BRANDS), "category": rng.choice(_CATEGORIES), "list_price": str(_money(rng.uniform(3, 500))), "currency": "EUR",
            "unit_cost": "0",
            "updated_at": _iso(start + dt.timedelta(minutes=pid)),
        }  # fmt: skip
        # a stable margin per product: cost is 55-75% of the launch price
        product["unit_cost"] = str(
            (Decimal(str(product["list_price"])) * Decimal(str(rng.choice([0.55, 0.6, 0.65, 0.7, 0.75])))).quantize(
                _CENT
            )
        )
        current[pid] = product
        versions.append(dict(product))
    for index in range(config.days):
        day_rng = _rng(config, "products", index)
        noon = _midnight(config.day(index)) + dt.timedelta(hours=12)
        for k, pid in enumerate(sorted(current)):
            roll = day_rng.random()
            if roll < 0.06:  # price change (SCD2)
                change = {
                    "list_price": str(
                        (Decimal(current[pid]["list_price"]) * Decimal(str(day_rng.choice([0.9, 1.05, 1.1])))).quantize(
                            _CENT
                        )
                    )
                }
            elif roll < 0.08:  # re-categorised (SCD2)
                change = {"category": day_rng.choice([c for c in _CATEGORIES if c != current[pid]["category"]])}
            elif roll < 0.09:  # name/brand fix (SCD1)
                change = {"name": current[pid]["name"] + " (2nd gen)"}
            else:
                continue
            current[pid] = {**current[pid], **change, "updated_at": _iso(noon + dt.timedelta(seconds=k))}
            versions.append(dict(current[pid]))
    return sorted(versions, key=lambda v: (v["updated_at"], v["product_id"]))


def load_products(settings: Settings) -> list[dict[str, Any]]:
    """The product history the simulator wrote (for serving the API later)."""
    return list(json.loads(read_bytes(settings, join_uri(settings.landing, PRODUCTS_PATH))))


def _net(lines: list[list[Any]]) -> Decimal:
    """Order total: sum of quantity * unit_price - discount over the lines."""
    return sum((Decimal(str(line[3])) * line[4] - line[5] for line in lines), Decimal("0"))


def _price_at(versions_by_product: dict[int, list[dict[str, Any]]], pid: int, ts: str) -> Decimal:
    price = versions_by_product[pid][0]["list_price"]
    for version in versions_by_product[pid]:
        if version["updated_at"] <= ts:
            price = version["list_price"]
    return Decimal(price)


def _log_line(rng: random.Random, ts: dt.datetime, pids: list[int]) -> tuple[str, int]:
    ip = rng.choice(
        [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"] * 9
        + [f"2001:db8::{rng.randint(1, 9999):x}"]
    )
    path = f"/products/{rng.choice(pids)}" if rng.random() < 0.6 else rng.choice(_PAGES)
    status = rng.choices([200, 304, 404, 500], weights=[85, 10, 4, 1])[0]
    size = "-" if status == 304 else str(rng.randint(200, 90000))
    line = f'{ip} - - [{ts.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "GET {path} HTTP/1.1" {status} {size} "-" "{rng.choice(_AGENTS)}"'
    return line, status


def generate(settings: Settings, config: SimulationConfig) -> dict[str, Any]:
    """Write every landing file for ``config`` and return (and write) the truth."""
    ensure_bucket(settings, settings.landing, create=True)
    out = _Writer(settings)
    stores = _stores(config)
    versions = _products(config)
    by_product: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for v in versions:
        by_product[v["product_id"]].append(v)
    pids = sorted(by_product)
    out.write(PRODUCTS_PATH, json.dumps(versions, indent=1).encode(), records=len(versions))

    # customers who signed up before the first day
    crng = _rng(config, "customers")
    customers: dict[int, dict[str, Any]] = {}
    for cid in range(1, config.n(200, 20) + 1):
        signup = config.start - dt.timedelta(days=crng.randint(1, 700))
        customers[cid] = _new_customer(crng, cid, signup, _midnight(signup) + dt.timedelta(hours=9))
    next_customer = len(customers) + 1
    pending_sync: set[int] = set()  # signed up after the CRM's evening export

    truth: dict[str, Any] = {
        "config": {"start": config.start.isoformat(), "days": config.days, "seed": config.seed, "scale": config.scale},
        "orders": {
            "rows_per_day": {},
            "distinct_orders_per_day": {},
            "revenue_per_day": {},
            "revenue_per_day_store": {},
            "lines_per_day": {},
        },
        "customers": {
            "snapshot_rows": {},
            "segment_changes": [],
            "moves": [],
            "name_fixes": [],
            "new": {},
            "synced_late": {},
        },
        "products": {"count": len(pids), "versions": len(versions)},
        "stores": {"count": len(stores)},
        "web_logs": {"lines_per_day": {}, "truncated_per_day": {}},
        "events": {"lines_per_day": {}, "bad_per_day": {}},
    }
    late_orders: dict[str, list[list[Any]]] = {}
    late_lines: dict[str, list[list[Any]]] = {}
    orders_truth = truth["orders"]
    # order ids are day_index * ORDER_ID_BLOCK + n; a late order takes the top of its own day's
    # block, so it can never meet a regular order of any day (the 9_000_000 used before did, on
    # day 91 of a long simulation)
    next_order_late = 1 * ORDER_ID_BLOCK + LATE_ORDER_OFFSET

    for index in range(config.days):
        day = config.day(index)
        key = day.isoformat()
        midnight = _midnight(day)
        latin = config.latin1(index)

        # -- stores: first day, and a re-export with a rename and a new store on day 6 ----------
        if index == 0 or index == 5:
            if index == 5:
                stores[0] = {**stores[0], "store_name": stores[0]["store_name"] + " (renovated)"}
                city, region, country, _ = _CITIES[-1]
                stores.append({"store_id": len(stores) + 1, "store_name": f"{city} Harbour", "city": city, "region": region,
                               "country": country, "store_type": "standard", "opened_on": key})  # fmt: skip
            rows = [[s[c] for c in STORE_COLUMNS] for s in stores]
            out.write(f"retail/stores/{key}/stores.csv", _csv(STORE_COLUMNS, rows), records=len(rows))
            truth["stores"]["count"] = len(stores)

        # -- customers: the day's changes, new sign-ups, then the end-of-day snapshot -----------
        drng = _rng(config, "customer-changes", index)
        for cid in sorted(c for c in customers if c not in pending_sync):
            roll = drng.random()
            when = midnight + dt.timedelta(hours=drng.randint(8, 20), minutes=drng.randint(0, 59))
            c = customers[cid]
            if roll < 0.03:
                new_segment = drng.choice([s for s in _SEGMENTS if s != c["segment"]])
                truth["customers"]["segment_changes"].append(
                    {"customer_id": cid, "day": key, "at": _iso(when), "from": c["segment"], "to": new_segment}
                )
                customers[cid] = {**c, "segment": new_segment, "updated_at": _iso(when)}
            elif roll < 0.045:
                city, region, country, postcode = drng.choice([x for x in _CITIES if x[0] != c["city"]])
                truth["customers"]["moves"].append(
                    {"customer_id": cid, "day": key, "at": _iso(when), "from": c["city"], "to": city}
                )
                customers[cid] = {**c, "city": city, "region": region, "country": country, "postcode": postcode,
                                  "street": f"{drng.choice(_STREETS)} {drng.randint(1, 200)}", "updated_at": _iso(when)}  # fmt: skip
            elif roll < 0.05:
                truth["customers"]["name_fixes"].append({"customer_id": cid, "day": key})
                customers[cid] = {
                    **c,
                    "email": c["email"].replace("@example.com", "@mail.example.com"),
                    "updated_at": _iso(when),
                }
        synced_late = sorted(pending_sync)
        pending_sync.clear()
        new_today = []
        for _ in range(drng.randint(1, max(2, config.n(3, 1)))):
            signup_at = midnight + dt.timedelta(hours=drng.randint(6, 22), minutes=drng.randint(0, 59))
            customers[next_customer] = _new_customer(drng, next_customer, day, signup_at)
            new_today.append(next_customer)
            if signup_at.hour >= 19:  # after the CRM's evening export: in tomorrow's snapshot only
                pending_sync.add(next_customer)
            next_customer += 1
        truth["customers"]["new"][key] = new_today
        truth["customers"]["synced_late"][key] = synced_late
        snapshot = [
            [c[col] for col in CUSTOMER_COLUMNS]
            for c in sorted(customers.values(), key=lambda c: c["customer_id"])
            if c["customer_id"] not in pending_sync
        ]
        out.write(
            f"retail/customers/{key}/customers_{key}.csv",
            _csv(CUSTOMER_COLUMNS, snapshot, encoding="latin-1" if latin else "utf-8"),
            records=len(snapshot),
        )
        truth["customers"]["snapshot_rows"][key] = len(snapshot)

        # -- orders and their lines -------------------------------------------------------------
        orng = _rng(config, "orders", index)
        count = max(1, int(config.n(60, 5) * (1.3 if day.weekday() >= 5 else 1.0) * orng.uniform(0.8, 1.2)))
        if count >= LATE_ORDER_OFFSET:
            raise ValueError(
                f"scale {config.scale} gives {count:,} orders on {key}: at most {LATE_ORDER_OFFSET - 1:,} fit a day's id block"
            )
        with_coupon = index >= 4
        header = ORDER_COLUMNS + (["coupon_code"] if with_coupon else [])
        order_rows: list[list[Any]] = []
        line_rows: list[list[Any]] = []
        final: dict[int, dict[str, Any]] = {}
        eligible = [cid for cid in customers if customers[cid]["signup_date"] <= key]
        for i in range(count):
            order_id = index * ORDER_ID_BLOCK + i + 1
            ts = midnight + dt.timedelta(seconds=orng.randrange(6 * 3600, 22 * 3600))
            # new customers often order on their signup day, before any snapshot knows them
            cid = new_today[i % len(new_today)] if i < len(new_today) else orng.choice(eligible)
            if i < len(new_today):  # a new customer's first order comes after signing up
                ts = max(
                    ts,
                    dt.datetime.fromisoformat(customers[cid]["updated_at"].replace("Z", "+00:00"))
                    + dt.timedelta(minutes=20),
                )
            store = orng.choice(stores[: 6 if index < 5 else len(stores)])["store_id"]
            lines = []
            for n in range(1, orng.randint(1, 4) + 1):
                pid = orng.choice(pids)
                price = _price_at(by_product, pid, _iso(ts))
                qty = orng.randint(1, 3)
                discount = (price * qty * Decimal("0.1")).quantize(_CENT) if orng.random() < 0.2 else Decimal("0.00")
                lines.append([order_id, n, pid, qty, price, discount, _iso(ts)])
            total = _net(lines)
            channel = None if orng.random() < 0.03 else orng.choice(_CHANNELS)
            ship = customers[cid]["city"]
            row = [order_id, _iso(ts), cid, store, channel, "completed", "EUR", total, ship, _iso(ts)]
            if with_coupon:
                row.append(orng.choice([None, None, None, "SPRING10"]))
            order_rows.append(row)
            line_rows.extend(lines)
            roll = orng.random()
            if roll < 0.04:  # a correction later the same day: one line's quantity changes
                later = ts + dt.timedelta(seconds=orng.randrange(60, 2 * 3600))
                fixed: list[Any] = list(lines[0])
                fixed[3] = int(fixed[3]) + 1
                fixed[6] = _iso(later)
                line_rows.append(fixed)
                lines[0] = fixed
                total = _net(lines)
                corrected = [*row[:5], "corrected", "EUR", total, ship, _iso(later), *row[10:]]
                order_rows.append(corrected)
            elif roll < 0.06:  # a retried export: exact duplicate rows
                order_rows.append(list(row))
                line_rows.append(list(lines[-1]))
            final[order_id] = {"store_id": store, "total": total, "lines": len(lines)}
        orng.shuffle(order_rows)
        bad_orders = 0
        if index % 4 == 1 and order_rows:  # an export cut off mid-row: ragged, quarantined in bronze
            fragment = [str(v) for v in order_rows[0][:4]]
            order_rows.insert(len(order_rows) // 2, fragment)
            bad_orders = 1
        encoding = "latin-1" if latin else "utf-8"
        out.write(
            f"retail/orders/{key}/orders_{key}.csv",
            _csv(header, order_rows, encoding=encoding),
            records=len(order_rows),
            bad=bad_orders,
        )
        out.write(
            f"retail/order_lines/{key}/order_lines_{key}.csv", _csv(LINE_COLUMNS, line_rows), records=len(line_rows)
        )

        # a late file: on the 4th day, three more orders of the 2nd day arrive from a second till
        if index == 3:
            late_day = config.day(1)
            lkey = late_day.isoformat()
            lrng = _rng(config, "late", index)
            rows, lrows = [], []
            for _ in range(3):
                next_order_late += 1
                ts = _midnight(late_day) + dt.timedelta(hours=lrng.randint(9, 20))
                pid = lrng.choice(pids)
                price = _price_at(by_product, pid, _iso(ts))
                cid = lrng.choice([c for c in customers if customers[c]["signup_date"] <= lkey])
                rows.append(
                    [
                        next_order_late,
                        _iso(ts),
                        cid,
                        1,
                        "store",
                        "completed",
                        "EUR",
                        price,
                        customers[cid]["city"],
                        _iso(ts),
                    ]
                )
                lrows.append([next_order_late, 1, pid, 1, price, Decimal("0.00"), _iso(ts)])
            late_orders[lkey] = rows
            late_lines[lkey] = lrows
            out.write(f"retail/orders/{lkey}/orders_{lkey}_late.csv", _csv(ORDER_COLUMNS, rows), records=len(rows))
            out.write(
                f"retail/order_lines/{lkey}/order_lines_{lkey}_late.csv", _csv(LINE_COLUMNS, lrows), records=len(lrows)
            )
            day_truth = orders_truth["revenue_per_day_store"].setdefault(lkey, {})
            for r in rows:
                day_truth[str(r[3])] = str(Decimal(day_truth.get(str(r[3]), "0")) + r[7])
            orders_truth["revenue_per_day"][lkey] = str(
                Decimal(orders_truth["revenue_per_day"][lkey]) + sum(r[7] for r in rows)
            )
            orders_truth["distinct_orders_per_day"][lkey] += len(rows)
            orders_truth["rows_per_day"][lkey] += len(rows)
            orders_truth["lines_per_day"][lkey] += len(lrows)

        by_store: dict[int, Decimal] = defaultdict(Decimal)
        for order in final.values():
            by_store[order["store_id"]] += order["total"]
        orders_truth["rows_per_day"][key] = len(order_rows)
        orders_truth["lines_per_day"][key] = sum(o["lines"] for o in final.values())
        orders_truth["distinct_orders_per_day"][key] = len(final)
        orders_truth["revenue_per_day"][key] = str(sum(by_store.values(), Decimal("0")))
        orders_truth["revenue_per_day_store"][key] = {str(k): str(v) for k, v in sorted(by_store.items())}

        # -- web access logs: one day, rotated into three files, a truncated line now and then --
        wrng = _rng(config, "web", index)
        requests = config.n(400, 20)
        log_lines: list[str] = []
        for _ in range(requests):
            line, _status = _log_line(wrng, midnight + dt.timedelta(seconds=wrng.randrange(0, 86400)), pids)
            log_lines.append(line)
        log_lines.sort(key=lambda text: text.split("[", 1)[1][:20])
        truncated = 1 if index % 3 == 0 else 0
        if truncated:
            cut = log_lines[len(log_lines) // 6]
            log_lines[len(log_lines) // 6] = cut[: cut.rfind('"') - 12]  # lost its closing quote (in the oldest file)
        third = len(log_lines) // 3
        thirds = [log_lines[:third], log_lines[third : 2 * third], log_lines[2 * third :]]
        oldest, middle, newest = ("\n".join(part) + "\n" for part in thirds)
        out.write(
            f"retail/web_logs/{key}/access.log.2.gz",
            gzip.compress(oldest.encode(), mtime=0),
            records=len(thirds[0]),
            bad=truncated,
        )
        out.write(f"retail/web_logs/{key}/access.log.1", middle.encode(), records=len(thirds[1]))
        out.write(f"retail/web_logs/{key}/access.log", newest.encode(), records=len(thirds[2]))
        truth["web_logs"]["lines_per_day"][key] = len(log_lines)
        truth["web_logs"]["truncated_per_day"][key] = truncated

        # -- clickstream events (NDJSON, nested) --------------------------------------------------
        erng = _rng(config, "events", index)
        events = []
        for e in range(config.n(300, 20)):
            ts = midnight + dt.timedelta(seconds=erng.randrange(0, 86400))
            kind = erng.choices(["page_view", "add_to_cart", "purchase"], weights=[80, 15, 5])[0]
            who = erng.choice(eligible) if erng.random() < 0.6 else None
            event: dict[str, Any] = {
                "event_id": f"{key}-{e:06d}", "event_ts": _iso(ts), "event_type": kind, "customer_id": who,
                "anonymous_id": f"anon-{erng.randint(1, config.n(400, 30))}",
                "context": {"page": f"/products/{erng.choice(pids)}" if kind != "purchase" else "/checkout",
                            "referrer": erng.choice([None, "https://www.google.com/", "https://news.example.org/"]),
                            "device": {"type": erng.choice(["desktop", "mobile", "tablet"]), "os": erng.choice(["linux", "ios", "android", "windows"])}},
                "items": [{"product_id": erng.choice(pids), "quantity": erng.randint(1, 3)} for _ in range(erng.randint(0, 2) if kind != "page_view" else 0)],
            }  # fmt: skip
            events.append(json.dumps(event, ensure_ascii=False))
        bad_events = 1 if index % 4 == 2 else 0
        if bad_events:
            events.insert(len(events) // 2, '{"event_id": "broken", "event_ts": ')
        out.write(
            f"retail/events/{key}/events_{key}.ndjson",
            ("\n".join(events) + "\n").encode(),
            records=len(events),
            bad=bad_events,
        )
        truth["events"]["lines_per_day"][key] = len(events)
        truth["events"]["bad_per_day"][key] = bad_events

    orders_truth["distinct_orders"] = sum(orders_truth["distinct_orders_per_day"].values())
    truth["customers"]["count"] = len(customers)
    truth["files"] = out.files
    write_bytes(
        settings,
        join_uri(settings.landing, TRUTH_PATH),
        json.dumps(truth, indent=2, sort_keys=True, default=str).encode(),
    )
    result: dict[str, Any] = json.loads(json.dumps(truth, default=str))
    return result
