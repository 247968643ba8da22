"""The PII classifier: validators, and precision/recall per class on a labelled Faker dataset."""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

from lakehouse.governance.classifier import (
    PII_CLASSES,
    classify_column,
    classify_frame,
    is_valid_iban,
    luhn_valid,
    name_hints,
)

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_BR", "da_DK", "sv_SE")
ROWS = 40


def _fakers() -> dict[str, Any]:
    from faker import Faker

    return {loc: Faker(loc) for loc in LOCALES}


def _free_text(f: Any, rng: random.Random) -> str:
    sentence = f.sentence(nb_words=8)
    if rng.random() < 0.5:
        pii = rng.choice([f.email(), f.phone_number(), f.ipv4_public()])
        return f"{sentence} Contact: {pii}. {f.sentence(nb_words=5)}"
    return f"{sentence} {f.sentence(nb_words=6)}"


#: (class or None, descriptive column name, generator(faker, rng)) -- None: not personal data
COLUMNS: list[tuple[str | None, str, Callable[[Any, random.Random], object]]] = [
    ("email", "email", lambda f, r: f.email()),
    ("email", "contact_email_address", lambda f, r: f.free_email()),
    ("phone", "phone", lambda f, r: f.phone_number()),
    ("phone", "mobile_number", lambda f, r: f.phone_number()),
    ("payment_card", "card_number", lambda f, r: f.credit_card_number()),
    ("iban", "iban", lambda f, r: f.iban()),
    ("ip_address", "client_ip", lambda f, r: f.ipv4()),
    ("ip_address", "ip_address", lambda f, r: f.ipv6()),
    ("national_id", "ssn", lambda f, r: f.ssn()),
    ("date_of_birth", "birth_date", lambda f, r: f.date_of_birth(minimum_age=18, maximum_age=90)),
    ("date_of_birth", "dob", lambda f, r: f.date_of_birth(minimum_age=1, maximum_age=100).isoformat()),
    ("person_name", "first_name", lambda f, r: f.first_name()),
    ("person_name", "last_name", lambda f, r: f.last_name()),
    ("person_name", "customer_name", lambda f, r: f.name()),
    ("street_address", "street", lambda f, r: f.street_address()),
    ("street_address", "address", lambda f, r: f.address()),
    ("postcode", "postcode", lambda f, r: f.postcode()),
    ("free_text", "support_notes", _free_text),
    (None, "product_name", lambda f, r: f.catch_phrase()),
    (None, "company", lambda f, r: f.company()),
    (None, "city", lambda f, r: f.city()),
    (None, "country", lambda f, r: f.country()),
    (None, "job_title", lambda f, r: f.job()),
    (None, "description", lambda f, r: f.sentence(nb_words=10)),
    (None, "order_uuid", lambda f, r: f.uuid4()),
    (None, "sku", lambda f, r: f.bothify("??-#####").upper()),
    (None, "amount", lambda f, r: round(r.uniform(1, 5000), 2)),
    (None, "quantity", lambda f, r: r.randint(1, 40)),
    (None, "order_id", lambda f, r: r.randint(100000, 999999)),
    (None, "order_date", lambda f, r: f.date_between(start_date="-2y", end_date="today")),
    (None, "signup_date", lambda f, r: f.date_between(start_date="-6y", end_date="today").isoformat()),
    (None, "created_at", lambda f, r: f.date_time_this_decade()),
    (None, "is_active", lambda f, r: r.random() < 0.5),
    (None, "currency", lambda f, r: f.currency_code()),
    (None, "status", lambda f, r: r.choice(["completed", "pending", "cancelled"])),
    (None, "url", lambda f, r: f.url()),
    (None, "file_path", lambda f, r: f.file_path()),
    (None, "color", lambda f, r: f.color_name()),
    (None, "tracking_code", lambda f, r: f.ean13()),
    (None, "version", lambda f, r: f"{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 99)}"),
    # shapes the demo lake has: product names ending in a number, date-prefixed ids, raw JSON
    (
        None,
        "product_label",
        lambda f, r: f"{r.choice(['Classic', 'Pro', 'Max', 'Mini'])} {f.word().title()} {r.randint(1, 99)}",
    ),
    (None, "event_id", lambda f, r: f"{f.date_between(start_date='-1y', end_date='today')}-{r.randint(0, 99999):06d}"),
    (
        None,
        "payload",
        lambda f, r: json.dumps({"sku": f.bothify("SKU-#####"), "price": round(r.uniform(1, 99), 2), "name": f.word()}),
    ),
    (
        "free_text",
        "raw",
        lambda f, r: (
            f'{f.ipv4_public()} - - [02/Jan/2024:15:31:18 +0000] "GET /{f.uri_path()} HTTP/1.1" 200 {r.randint(100, 99999)}'
        ),
    ),
]


@functools.lru_cache(maxsize=1)
def labelled_dataset(seed: int = 11) -> tuple[tuple[str | None, str, pl.Series], ...]:
    """One column per (locale, column kind): its true class, its descriptive name and its values."""
    fakers = _fakers()
    out = []
    for locale, fake in fakers.items():
        fake.seed_instance(seed)
        rng = random.Random(f"{seed}:{locale}")
        for truth, name, make in COLUMNS:
            values = [make(fake, rng) for _ in range(ROWS)]
            out.append((truth, name, pl.Series(name, values)))
    return tuple(out)


def precision_recall(opaque: bool) -> dict[str, tuple[float, float, int]]:
    """Per class: (precision, recall, support) over the labelled columns (names hidden when ``opaque``)."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for i, (truth, name, series) in enumerate(labelled_dataset()):
        shown = f"col_{i}" if opaque else name
        finding = classify_column(shown, series.to_list(), dtype=series.dtype, min_confidence=0.8)
        predicted = finding.pii_class if finding else None
        if predicted is not None and predicted == truth:
            tp[predicted] += 1
        else:
            if predicted is not None:
                fp[predicted] += 1
            if truth is not None:
                fn[truth] += 1
    report = {}
    for pii_class in PII_CLASSES:
        support = tp[pii_class] + fn[pii_class]
        predicted = tp[pii_class] + fp[pii_class]
        precision = tp[pii_class] / predicted if predicted else 1.0
        recall = tp[pii_class] / support if support else 1.0
        report[pii_class] = (round(precision, 3), round(recall, 3), support)
    return report


def _print(title: str, report: dict[str, tuple[float, float, int]]) -> None:
    print(f"\n{title}")
    print(f"{'class':<16} {'precision':>9} {'recall':>7} {'columns':>8}")
    for pii_class, (p, r, n) in report.items():
        print(f"{pii_class:<16} {p:>9.3f} {r:>7.3f} {n:>8}")


def test_precision_and_recall_per_class_on_labelled_faker_columns():
    """Eleven locales, 19 PII and 25 non-PII column kinds; with their real names, then with opaque ones."""
    named = precision_recall(opaque=False)
    _print("column names and values", named)
    for pii_class, (precision, recall, support) in named.items():
        assert support > 0, pii_class
        assert precision >= 0.95, (pii_class, precision)
        assert recall >= 0.9, (pii_class, recall)

    opaque = precision_recall(opaque=True)
    _print("values only (opaque column names)", opaque)
    # values alone: the verifiable classes are still found, nothing else is flagged by mistake
    for pii_class in ("email", "payment_card", "iban", "ip_address", "free_text"):
        assert opaque[pii_class][1] >= 0.95, (pii_class, opaque[pii_class])
    for pii_class in ("phone", "national_id", "street_address"):
        assert opaque[pii_class][1] >= 0.7, (pii_class, opaque[pii_class])
    for pii_class, (precision, _, _) in opaque.items():
        assert precision >= 0.9, (pii_class, precision)


def test_validators():
    assert luhn_valid("4539578763621486") and not luhn_valid("4539578763621487")
    assert is_valid_iban("DE89 3704 0044 0532 0130 00") and not is_valid_iban("DE89 3704 0044 0532 0130 01")
    assert not is_valid_iban("DE89370400440532013")  # wrong length for DE
    assert name_hints("customerEmail") == {"email"}
    assert "person_name" not in name_hints("store_name") and "person_name" in name_hints("last_name")
    assert "street_address" not in name_hints("email_address") and "ip_address" in name_hints("client_ip")


@pytest.mark.parametrize(
    ("name", "values", "dtype", "expected"),
    [
        ("email", ["a.b@example.com", "c@d.org", None], pl.String, "email"),
        ("phone", ["+49 30 5284425", "(555) 123-4567", "+33 (0)7 87 76 31 70"], pl.String, "phone"),
        ("whatever", ["4539 5787 6362 1486", "5500-0000-0000-0004", "340000000000009"], pl.String, "payment_card"),
        ("client_ip", ["19.89.1.223", "2001:db8::8f4", "10.0.0.1"], pl.String, "ip_address"),
        ("birth_date", [dt.date(1952, 4, 11), dt.date(1978, 3, 24), dt.date(2001, 1, 5)], pl.Date, "date_of_birth"),
        ("postcode", ["8000", "75001", "30-001"], pl.String, "postcode"),
        ("street", ["Königsallee 51", "Rue de la Paix 3", "Market Street 10"], pl.String, "street_address"),
        ("order_total", [1938.99, 12.5], pl.Float64, None),
        ("customer_id", [1, 2, 3], pl.Int64, None),
        ("signup_date", [dt.date(2023, 5, 9), dt.date(2022, 2, 18)], pl.Date, None),
        ("status", ["completed", "corrected"], pl.String, None),
    ],
)
def test_single_columns(name, values, dtype, expected):
    finding = classify_column(name, values, dtype=dtype, min_confidence=0.8)
    assert (finding.pii_class if finding else None) == expected, finding


def test_a_name_alone_is_not_enough():
    """A column called email that holds no addresses is reported below the threshold."""
    finding = classify_column("email", ["n/a", "unknown", "-"], dtype=pl.String)
    assert finding is None or finding.confidence < 0.8


def test_classify_frame_reports_sample_size_and_skips_measures():
    frame = pl.DataFrame(
        {
            "email": [f"user{i}@example.com" for i in range(30)] + [None] * 5,
            "amount": [float(i) for i in range(35)],
            "note": [
                f"call me at +44 20 7946 09{i:02d} please" if i % 3 == 0 else f"nothing to see here, ticket {i}"
                for i in range(35)
            ],
        }
    )
    findings = {f.column: f for f in classify_frame(frame, min_confidence=0.8)}
    assert set(findings) == {"email", "note"}
    assert findings["email"].sample_size == 30 and findings["email"].matched == 30
    assert findings["note"].pii_class == "free_text"
