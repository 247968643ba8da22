"""Source specs: YAML validated with errors that name the file, the source and the field."""

import textwrap

import pytest

from lakehouse.exceptions import SpecError
from lakehouse.ingest.sources import expand_env, load_specs

GOOD = """
domain: shop
owner: team:shop
sources:
  orders:
    description: Orders exported every night.
    format: csv
    landing: shop/orders/{date}/*.csv
    columns:
      order_id: {type: int64, description: Order number.}
    hints: {zip: string}
"""


def write(tmp_path, text):
    path = tmp_path / "sources.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_spec_loads(tmp_path):
    (spec,) = load_specs(write(tmp_path, GOOD))
    assert (spec.name, spec.domain, spec.owner, spec.format) == ("orders", "shop", "team:shop", "csv")
    assert str(spec.bronze) == "bronze.shop.orders" and str(spec.quarantine) == "bronze.shop.orders__quarantine"
    assert spec.type_hints == {"order_id": "int64", "zip": "string"}
    assert spec.date_regex().match("shop/orders/2024-01-02/a.csv").group("date") == "2024-01-02"
    assert spec.date_regex().match("shop/orders/2024-01-02/sub/a.csv") is None


@pytest.mark.parametrize(
    "change, message",
    [
        (("format: csv", "format: xls"), r"sources.orders.format: Input should be 'csv', 'tsv'"),
        (
            ("    landing: shop/orders/{date}/*.csv\n", ""),
            r"sources.orders: Value error, a csv source needs a landing glob",
        ),
        (
            ("landing: shop/orders/{date}/*.csv", "landing: shop/orders/*.csv"),
            r"landing must contain \{date\}, or date_column",
        ),
        (("landing: shop/orders/{date}/*.csv", "landing: ../etc/{date}/*"), r"may not contain '\.\.'"),
        (("hints: {zip: string}", "hints: {zip: money}"), r"sources.orders.hints: Value error, unknown type 'money'"),
        (
            ("{type: int64,", "{type: int65,"),
            r"sources.orders.columns.order_id.type: Value error, unknown type 'int65'",
        ),
        (("    hints:", "    colour: blue\n    hints:"), r"sources.orders.colour: Extra inputs are not permitted"),
        (
            ("description: Orders exported every night.", "description: x"),
            r"sources.orders.description: String should have at least 10",
        ),
        (("  orders:", "  Orders:"), r"sources.Orders.name: String should match pattern"),
    ],
)
def test_bad_specs_name_file_source_and_field(tmp_path, change, message):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(SpecError, match=message) as error:
        load_specs(path)
    assert str(path) in str(error.value)


def test_rest_sources_need_a_url_and_no_landing(tmp_path):
    text = GOOD.replace("format: csv", "format: rest").replace("    landing: shop/orders/{date}/*.csv\n", "")
    with pytest.raises(SpecError, match=r"a rest source needs options\.url"):
        load_specs(write(tmp_path, text))


def test_not_yaml_and_wrong_shape(tmp_path):
    with pytest.raises(SpecError, match="not valid YAML"):
        load_specs(write(tmp_path, "sources: [unclosed"))
    with pytest.raises(SpecError, match="expected a mapping with 'domain', 'owner' and 'sources'"):
        load_specs(write(tmp_path, "- a\n- b\n"))


def test_environment_values_are_expanded_when_read_not_when_loaded():
    assert expand_env({"url": "${API:-http://x}/p", "n": [1, "${A}"]}, {"A": "a"}) == {
        "url": "http://x/p",
        "n": [1, "a"],
    }
    assert expand_env("${MISSING}", {}) == "${MISSING}"


def test_the_retail_specs_are_valid():
    from assets.retail.bronze import SPECS

    assert set(SPECS) == {"stores", "customers", "orders", "order_lines", "products", "web_logs", "events"}
    assert SPECS["products"].format == "rest" and SPECS["web_logs"].format == "log"


NULLS = GOOD.replace(
    "    hints: {zip: string}\n",
    "    hints: {zip: string}\n"
    "    options:\n"
    "      null_values: ['NULL', '-', '']\n"
    "      column_null_values: {country: []}\n",
).replace(
    "      order_id: {type: int64, description: Order number.}\n",
    "      order_id: {type: int64, description: Order number.}\n"
    "      country: {type: string, description: Country code (NA is Namibia).}\n"
    "      amount: {type: int64, description: Amount.}\n",
)


def test_declared_null_tokens_load_and_reach_the_reader(tmp_path):
    from lakehouse.ingest.readers import read_file

    (spec,) = load_specs(write(tmp_path, NULLS))
    assert spec.options["null_values"] == ["NULL", "-", ""]
    data = b'order_id,country,amount\n1,NA,NULL\n2,"-","-"\n3,,""\n'
    result = read_file(data, source="o.csv", fmt=spec.format, options=spec.options)
    assert result.rows.select("country", "amount").to_dicts() == [
        {"country": "NA", "amount": None},
        {"country": "-", "amount": None},
        {"country": None, "amount": None},
    ]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            ("null_values: ['NULL', '-', '']", "null_values: [NULL, '-']"),
            r"sources.orders: Value error, options.null_values\[0\]: expected a string, got None; quote every token",
        ),
        (
            ("null_values: ['NULL', '-', '']", "null_values: NA"),
            r"options.null_values: expected a list of strings, e.g. \['NULL', 'N/A'\], got 'NA'",
        ),
        (
            ("column_null_values: {country: []}", "column_null_values: {contry: []}"),
            r"options.column_null_values.contry: not a column of this source \(columns: order_id, country, amount\)",
        ),
        (
            ("column_null_values: {country: []}", "column_null_values: {country: [no]}"),
            r"options.column_null_values.country\[0\]: expected a string, got False",
        ),
        (
            ("column_null_values: {country: []}", "column_null_values: [country]"),
            r"options.column_null_values: expected a mapping of column -> list of tokens",
        ),
        (
            ("format: csv", "format: ndjson"),
            r"options.null_values applies to csv and tsv sources only \(a ndjson source has its own nulls\)",
        ),
    ],
)
def test_bad_null_tokens_name_file_source_and_field(tmp_path, change, message):
    path = write(tmp_path, NULLS.replace(*change))
    with pytest.raises(SpecError, match=message) as error:
        load_specs(path)
    assert str(path) in str(error.value)
