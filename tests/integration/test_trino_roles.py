"""The governance roles enforced by a live Trino (476, tests/trinoserver.py): clients log in with a
password over HTTPS, the file-based access control generated from the governance policy is
loaded, and the masking key reaches the server only from the environment, into a table the masks
read (never into the rules file or a mask's text, which EXPLAIN prints).

``analyst`` gets keyed hashes equal to DuckDB's masking for the same key (joins on them still
work) and no way around them; ``steward`` gets clear values; nobody gets in without a valid
password over HTTPS. The assertions look for the clear values themselves (e-mail addresses) in
everything the analyst gets back, error messages included.

Shares the session's server and demos (tests/trino_fixtures.py): one xdist group with the other
live-Trino modules.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import requests
from trino_fixtures import TrinoDemo, TrinoSession

from lakehouse.governance.masking import TRINO_KEY_TABLE, keyed_hash, keyed_hash_int
from lakehouse.naming import TableRef
from lakehouse.query.trino import CATALOGS
from lakehouse.sql import quote_ident, quote_literal

pytestmark = [pytest.mark.xdist_group("trino"), pytest.mark.slow]

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def run(session: TrinoSession, user: str, sql: str, catalog: str | None = None) -> list[list[Any]]:
    conn = session.server.connect(user, catalog=catalog)
    try:
        return conn.cursor().execute(sql).fetchall()  # type: ignore[no-any-return]
    finally:
        conn.close()


def attempt(session: TrinoSession, user: str, sql: str, catalog: str | None = None) -> tuple[str, str]:
    """``("rows", text of the rows)`` or ``("error", the error's text)``: what ``user`` gets back."""
    try:
        return "rows", json.dumps(run(session, user, sql, catalog), default=str)
    except Exception as exc:
        return "error", str(exc)


class Customers:
    """Where the demo keeps customers' e-mails, and the clear values (read by the service user)."""

    def __init__(self, session: TrinoSession, demo: TrinoDemo) -> None:
        self.catalog = CATALOGS[demo.format]
        found = run(
            session,
            "lakehouse",
            f"SELECT table_schema, table_name FROM {self.catalog}.information_schema.columns "
            "WHERE column_name = 'email' AND table_schema LIKE 'silver%' ORDER BY 1, 2",
        )
        assert found, "the demo has no silver table with e-mails"
        self.schema, self.table = found[0]
        self.name = f"{self.catalog}.{quote_ident(self.schema)}.{quote_ident(self.table)}"
        clear = run(session, "lakehouse", f"SELECT customer_id, email FROM {self.name} WHERE email IS NOT NULL")
        assert len(clear) >= 10 and all(EMAIL.fullmatch(e) for _, e in clear), clear[:3]
        self.ids = {int(i) for i, _ in clear}
        self.emails = {e for _, e in clear}


@pytest.fixture(scope="module")
def customers(trino_session, trino_demos) -> dict[str, Customers]:
    return {fmt: Customers(trino_session, demo) for fmt, demo in trino_demos.items()}


def assert_no_clear_value(where: str, text: str, emails: set[str]) -> None:
    leaked = sorted(e for e in EMAIL.findall(text) if e in emails)
    assert leaked == [], f"{where}: the analyst got clear e-mails back: {leaked[:3]}"


# -- analyst: keyed hashes, the same as DuckDB's, and joins on them -------------------------------


def test_analyst_gets_duckdbs_keyed_hashes_and_joins_on_them_still_match(trino_session, trino_demo, customers):
    from lakehouse.query.duckdb import Query

    c = customers[trino_demo.format]
    key = trino_session.masking_key.encode()
    masked = run(trino_session, "analyst", f"SELECT customer_id, email FROM {c.name} WHERE email IS NOT NULL")
    assert {int(i) for i, _ in masked} == {keyed_hash_int(i, key) for i in c.ids}
    assert {e for _, e in masked} == {keyed_hash(e, key) for e in c.emails}
    layer, domain = c.schema.split("_", 1)
    only = [(TableRef(layer, domain, c.table), trino_demo.format)]
    with Query(trino_demo.settings, tables=only, role="analyst") as q:  # the project's masking in DuckDB
        duck = q.sql(f"SELECT customer_id, email FROM {quote_ident(c.schema)}.{quote_ident(c.table)}").rows()
    assert sorted((int(i), e) for i, e in masked) == sorted((int(i), e) for i, e in duck if e is not None)

    # facts join their customers on the hashed key as on the clear one
    facts = run(
        trino_session,
        "lakehouse",
        f"SELECT table_schema, table_name FROM {c.catalog}.information_schema.columns "
        f"WHERE column_name = 'customer_id' AND table_schema = {quote_literal(c.schema)} "
        f"AND table_name <> {quote_literal(c.table)} ORDER BY 2",
    )
    assert facts, f"no table joins {c.schema}.{c.table} on customer_id"
    schema, table = next((f for f in facts if f[1] == "orders"), facts[0])  # one join: the data is the same
    fact = f"{c.catalog}.{quote_ident(schema)}.{quote_ident(table)}"
    join = f"SELECT count(*) FROM {fact} f JOIN {c.name} d ON f.customer_id = d.customer_id"
    clear = run(trino_session, "steward", join)[0][0]
    assert clear > 0 and run(trino_session, "analyst", join)[0][0] == clear, table
    # and gold facts their dimension on the (keyed-hashed) surrogate key
    gold = run(
        trino_session,
        "lakehouse",
        f"SELECT table_schema, table_name FROM {c.catalog}.information_schema.columns "
        "WHERE column_name = 'customer_sk' AND table_schema LIKE 'gold%' ORDER BY table_name",
    )
    dims = [(s, t) for s, t in gold if t.startswith("dim_customer")]
    assert dims and len(gold) > len(dims), gold
    dim = f"{c.catalog}.{quote_ident(dims[0][0])}.{quote_ident(dims[0][1])}"
    others = [g for g in gold if g not in dims]
    schema, table = next((g for g in others if g[1].startswith("fct_")), others[0])
    fact = f"{c.catalog}.{quote_ident(schema)}.{quote_ident(table)}"
    join = f"SELECT count(*) FROM {fact} f JOIN {dim} d ON f.customer_sk = d.customer_sk"
    clear = run(trino_session, "steward", join)[0][0]
    assert clear > 0 and run(trino_session, "analyst", join)[0][0] == clear, table


def test_steward_sees_clear_values(trino_session, trino_demo, customers):
    c = customers[trino_demo.format]
    rows = run(trino_session, "steward", f"SELECT customer_id, email FROM {c.name} WHERE email IS NOT NULL")
    assert {int(i) for i, _ in rows} == c.ids and {e for _, e in rows} == c.emails


# -- analyst: no way around the masks ---------------------------------------------------------------


def test_analyst_cannot_reach_clear_values_any_other_way(trino_session, trino_demo, customers):
    c = customers[trino_demo.format]
    key = trino_session.masking_key
    some_email = sorted(c.emails)[0]
    # a steward's query text with a clear value in it (system.runtime.queries must not show it)
    run(trino_session, "steward", f"SELECT count(*) FROM {c.name} WHERE email = {quote_literal(some_email)}")
    table = c.name
    meta = (
        ["$files", "$history", "$snapshots", "$partitions", "$manifests", "$refs"]
        if trino_demo.format == "iceberg"
        else ["$history", "$properties"]
    )
    probes = {
        "select *": f"SELECT * FROM {table}",
        "cast": f"SELECT CAST(email AS varbinary), CAST(customer_id AS varchar) FROM {table}",
        "min/max": f"SELECT min(email), max(email), min(customer_id), max(customer_id) FROM {table}",
        "filter on clear value": f"SELECT email FROM {table} WHERE email = {quote_literal(some_email)}",
        "explain": f"EXPLAIN SELECT email, customer_id FROM {table}",
        "explain analyze": f"EXPLAIN ANALYZE SELECT email, customer_id FROM {table}",
        "explain io": f"EXPLAIN (TYPE IO, FORMAT JSON) SELECT email FROM {table} WHERE email > 'a'",
        "show stats": f"SHOW STATS FOR {table}",
        "show stats query": f"SHOW STATS FOR (SELECT email FROM {table})",
        "show create table": f"SHOW CREATE TABLE {table}",
        "columns": f"SELECT * FROM {c.catalog}.information_schema.columns WHERE table_name = {quote_literal(c.table)}",
        "system queries": "SELECT query FROM system.runtime.queries",
        "system tasks": "SELECT * FROM system.runtime.tasks",
        "key table": f"SELECT * FROM {TRINO_KEY_TABLE}",
        "table_changes": (
            f"SELECT * FROM TABLE({c.catalog}.system.table_changes({quote_literal(c.schema)}, {quote_literal(c.table)}"
            + (", 0))" if trino_demo.format == "delta" else "))")
        ),
        "system.query": f"SELECT * FROM TABLE({c.catalog}.system.query(query => 'SELECT 1'))",
        **{name: f'SELECT * FROM {c.catalog}.{quote_ident(c.schema)}."{c.table}{name}"' for name in meta},
    }
    refused = {}
    for name, sql in probes.items():
        outcome, text = attempt(trino_session, "analyst", sql)
        assert_no_clear_value(name, text, c.emails)
        # the key: neither as text nor in the encodings a plan prints constants in
        for form in (key, key.encode().hex(), base64.b64encode(key.encode()).decode()):
            assert form not in text, f"{name}: the masking key is in what the analyst got back"
        if outcome == "error":
            assert "Access Denied" in text or "not registered" in text or "does not exist" in text, (name, text)
            refused[name] = text
    print(f"{trino_demo.format}: refused {sorted(refused)}; answered (masked) {sorted(set(probes) - set(refused))}")
    # what must be refused outright (it would show clear values, or files/stats holding them)
    must_refuse = {"system queries", "system tasks", "key table", "table_changes", *meta}
    assert must_refuse <= set(refused), sorted(must_refuse - set(refused))
    # and what is allowed shows hashes: the plan reads the key from the key table, never a constant
    explain = run(trino_session, "analyst", probes["explain"])[0][0]
    assert "hmac_sha256" in explain and TRINO_KEY_TABLE.split(".")[0] in explain

    # no view, table or copy of the table the masks would not apply to
    schema = f"{c.catalog}.{quote_ident(c.schema)}"
    for sql in (
        f"CREATE VIEW {schema}.roles_probe AS SELECT * FROM {table}",
        f"CREATE TABLE {schema}.roles_probe AS SELECT * FROM {table}",
        f"CREATE SCHEMA {c.catalog}.roles_probe",
        f"ALTER TABLE {table} SET AUTHORIZATION analyst",
        f"GRANT SELECT ON {table} TO USER analyst",
        f"DELETE FROM {table} WHERE false",
    ):
        outcome, text = attempt(trino_session, "analyst", sql)
        assert outcome == "error" and "Access Denied" in text, (sql, text)
    assert run(trino_session, "lakehouse", f"SHOW TABLES FROM {schema} LIKE 'roles_probe'") == []


def test_a_view_over_a_masked_table_is_not_a_way_around_the_masks(trino_session, trino_demos, customers):
    """The service user (dbt) may create views, which run with its rights (SECURITY DEFINER): no
    role reads one the rules do not list, nor its definition."""
    c = customers["delta"]  # Delta's file metastore stores views
    view = f"{c.catalog}.{quote_ident(c.schema)}.roles_probe_view"
    run(trino_session, "lakehouse", f"CREATE OR REPLACE VIEW {view} SECURITY DEFINER AS SELECT email FROM {c.name}")
    try:
        assert {e for (e,) in run(trino_session, "lakehouse", f"SELECT * FROM {view}") if e} == c.emails
        for user in ("analyst", "steward"):
            for sql in (f"SELECT * FROM {view}", f"SHOW CREATE VIEW {view}"):
                outcome, text = attempt(trino_session, user, sql)
                assert outcome == "error" and "Access Denied" in text, (user, sql, text)
                assert_no_clear_value(sql, text, c.emails)
    finally:
        run(trino_session, "lakehouse", f"DROP VIEW IF EXISTS {view}")


def test_analyst_cannot_act_as_another_user(trino_session, trino_demos, customers):
    import trino

    from lakehouse.query.trino import http_session

    server = trino_session.server
    c = customers["iceberg"]
    # the analyst's own password, another user's name in X-Trino-User
    conn = trino.dbapi.connect(
        host="127.0.0.1",
        port=server.https_port,
        user="steward",
        http_scheme="https",
        auth=trino.auth.BasicAuthentication("analyst", server.passwords["analyst"]),
        http_session=http_session(str(server.ca_file)),
    )
    try:
        with pytest.raises(Exception, match="Access Denied") as denied:
            conn.cursor().execute(f"SELECT email FROM {c.name}").fetchall()
        assert_no_clear_value("impersonation", str(denied.value), c.emails)
    finally:
        conn.close()
    outcome, text = attempt(trino_session, "analyst", "SET SESSION AUTHORIZATION steward")
    assert outcome == "error" and "Access Denied" in text, text


# -- authentication --------------------------------------------------------------------------------


def test_only_a_valid_password_over_https_gets_in(trino_session, trino_demos):
    server = trino_session.server
    https = f"https://127.0.0.1:{server.https_port}/v1/statement"
    ca = str(server.ca_file)
    ok = requests.post(https, data="SELECT 1", auth=("analyst", server.passwords["analyst"]), verify=ca, timeout=30)
    assert ok.status_code == 200 and ok.json()["stats"]["state"] in ("QUEUED", "RUNNING", "FINISHED")
    # no password, a wrong one, another user's, an unknown user
    for auth, headers in (
        (None, {"X-Trino-User": "lakehouse"}),
        (("analyst", "wrong-" + server.passwords["analyst"]), {}),
        (("analyst", server.passwords["steward"]), {}),
        (("mallory", server.passwords["analyst"]), {}),
    ):
        refused = requests.post(https, data="SELECT 1", auth=auth, headers=headers, verify=ca, timeout=30)
        assert refused.status_code == 401, (auth and auth[0], refused.status_code, refused.text[:200])
        assert "nextUri" not in refused.text
    # plain HTTP (the internal port) authenticates nobody, with a valid password or without
    http = f"http://127.0.0.1:{server.port}/v1/statement"
    for auth in (("lakehouse", server.passwords["lakehouse"]), None):
        refused = requests.post(http, data="SELECT 1", auth=auth, headers={"X-Trino-User": "lakehouse"}, timeout=30)
        assert refused.status_code == 403 and "Authentication over HTTP is not enabled" in refused.text
    # a client that does not trust the session's CA does not talk to the server at all
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(https, data="SELECT 1", auth=("analyst", server.passwords["analyst"]), verify=True, timeout=30)


def test_no_secret_in_the_servers_files_or_log(trino_session, trino_demos):
    server = trino_session.server
    secrets = [*server.passwords.values(), server.shared_secret, trino_session.masking_key]
    log = server.output(chars=10**8)
    assert "internal-communication.shared-secret" in log  # the configuration is logged, redacted
    etc = server.state / "etc"
    files = {p.name: p.read_text(errors="replace") for p in etc.rglob("*") if p.is_file()}
    files[trino_session.rules_file.name] = trino_session.rules_file.read_text()
    assert "password.db" in files and "rules.json" in files
    for secret in secrets:
        assert secret not in log
        assert [name for name, text in files.items() if secret in text] == []
    assert "mask_environment" in files["rules.json"] and "hmac_sha256" in files["rules.json"]
