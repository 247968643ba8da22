"""Without a server: the catalog files (the compose templates and the ones generated from a lake's
settings), the SQL the project sends and the client wiring. tests/integration/test_trino_live.py
runs a real Trino (deploy/local/trino.sh) over real lakes."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlglot
from click.testing import CliRunner
from conftest import PROJECT_ROOT

from lakehouse.exceptions import QueryError
from lakehouse.naming import TableRef
from lakehouse.query.trino import TrinoResource, register_statements, to_trino
from lakehouse.settings import get_settings

CATALOG_DIR = PROJECT_ROOT / "deploy" / "trino" / "catalog"


def properties(path):
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assert "=" in line, f"{path.name}:{number}: not key=value: {line!r}"
        key, value = line.split("=", 1)
        assert key.strip() not in out, f"{path.name}:{number}: duplicate {key}"
        out[key.strip()] = value.strip()
    return out


def test_iceberg_catalog_shares_the_jdbc_catalog_pyiceberg_writes():
    props = properties(CATALOG_DIR / "iceberg.properties")
    assert props["connector.name"] == "iceberg"
    assert props["iceberg.catalog.type"] == "jdbc"
    # pyiceberg's SqlCatalog rows carry catalog_name = "lakehouse" (tests/integration/test_postgres.py)
    assert props["iceberg.jdbc-catalog.catalog-name"] == "lakehouse"
    assert props["iceberg.jdbc-catalog.connection-url"].startswith("jdbc:postgresql://postgres:5432/")
    assert props["s3.path-style-access"] == "true"
    assert props["fs.native-s3.enabled"] == "true"


@pytest.mark.parametrize("name", ["iceberg.properties", "delta_lake.properties"])
def test_catalog_secrets_come_from_the_environment(name):
    props = properties(CATALOG_DIR / name)
    for key in ("s3.aws-access-key", "s3.aws-secret-key", "iceberg.jdbc-catalog.connection-password"):
        if key in props:
            assert props[key].startswith("${ENV:"), f"{name}: {key} must come from the environment"
    assert all("minio" not in v or v == "http://minio:9000" for v in props.values())


def test_delta_catalog_can_register_tables_by_location():
    props = properties(CATALOG_DIR / "delta_lake.properties")
    assert props["connector.name"] == "delta_lake"
    assert props["delta.register-table-procedure.enabled"] == "true"
    assert props["hive.metastore"] == "file"


def project_sql_files():
    return sorted(PROJECT_ROOT.glob("assets/*/queries/*.sql"))


@pytest.mark.parametrize("path", project_sql_files(), ids=lambda p: p.name)
def test_project_queries_transpile_to_trino(path):
    trino_sql = to_trino(path.read_text())
    # the result parses as Trino SQL and still reads the ARCHITECTURE.md names
    tree = sqlglot.parse_one(trino_sql, read="trino")
    tables = {f"{t.db}.{t.name}" for t in tree.find_all(sqlglot.exp.Table) if t.db}
    assert tables and all(t.split(".")[0].startswith(("silver_", "gold_")) for t in tables)


def test_all_22_tpch_queries_transpile_to_trino(lake_env):
    from lakehouse.query.duckdb import connect

    con = connect(get_settings(), extensions=("tpch",))
    queries = con.execute("SELECT query_nr, query FROM tpch_queries() ORDER BY 1").fetchall()
    assert len(queries) == 22
    for number, sql in queries:
        trino_sql = to_trino(sql)
        sqlglot.parse_one(trino_sql, read="trino")
        assert "lineitem" in trino_sql or "partsupp" in trino_sql or "customer" in trino_sql, number


def test_duckdb_only_syntax_is_rewritten():
    sql = to_trino("SELECT strftime(order_ts, '%Y-%m') AS month, list_value(1, 2) AS l FROM gold_retail.fct_sales")
    assert "date_format" in sql.lower() or "format_datetime" in sql.lower()
    assert "array[" in sql.lower()
    with pytest.raises(QueryError, match="cannot transpile"):
        to_trino("SELECT FROM WHERE (")


def test_register_statements_quote_names_and_use_the_one_location_mapping(lake_env, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", "s3://lake/warehouse")
    settings = get_settings()
    statements = register_statements(
        settings, [TableRef("gold", "retail", "fct_sales"), TableRef("gold", "retail", "dim_date")]
    )
    assert statements[0] == (
        'CREATE SCHEMA IF NOT EXISTS "delta_lake"."gold_retail" WITH (location = \'s3://lake/warehouse/gold/retail\')'
    )
    assert len(statements) == 3
    assert "table_location => 's3://lake/warehouse/gold/retail/fct_sales'" in statements[1]


class FakeTrino(BaseHTTPRequestHandler):
    """Trino's client protocol (POST /v1/statement), enough to check the client wiring."""

    received: list[dict] = []

    def do_POST(self):
        sql = self.rfile.read(int(self.headers["Content-Length"])).decode()
        FakeTrino.received.append({"sql": sql, **{k.lower(): v for k, v in self.headers.items()}})
        if sql.startswith("SHOW TABLES"):
            body = {
                "id": "q4",
                "infoUri": "http://127.0.0.1/ui/q4",
                "stats": {"state": "FINISHED"},
                "columns": [
                    {
                        "name": "Table",
                        "type": "varchar",
                        "typeSignature": {"rawType": "varchar", "arguments": [{"kind": "LONG", "value": 2147483647}]},
                    }
                ],
                "data": [["already_there"]],
            }
        elif "'raced'" in sql:
            body = {
                "id": "q3",
                "infoUri": "http://127.0.0.1/ui/q3",
                "stats": {"state": "FAILED"},
                "error": {
                    "message": "Table already exists: 'gold_retail.raced'",
                    "errorCode": 9,
                    "errorName": "ALREADY_EXISTS",
                    "errorType": "USER_ERROR",
                },
            }
        elif "missing_table" in sql:
            body = {
                "id": "q2",
                "infoUri": "http://127.0.0.1/ui/q2",
                "stats": {"state": "FAILED"},
                "error": {
                    "message": "Table 'iceberg.gold_retail.missing_table' does not exist",
                    "errorCode": 46,
                    "errorName": "TABLE_NOT_FOUND",
                    "errorType": "USER_ERROR",
                },
            }
        else:
            body = {
                "id": "q1",
                "infoUri": "http://127.0.0.1/ui/q1",
                "stats": {"state": "FINISHED"},
                "columns": [
                    {
                        "name": "region",
                        "type": "varchar",
                        "typeSignature": {"rawType": "varchar", "arguments": [{"kind": "LONG", "value": 2147483647}]},
                    },
                    {"name": "revenue", "type": "bigint", "typeSignature": {"rawType": "bigint", "arguments": []}},
                ],
                "data": [["EU", 120], ["US", 80]],
            }
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_trino():
    FakeTrino.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTrino)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://analyst@127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_trino_resource_returns_a_frame_and_names_the_catalog(fake_trino):
    resource = TrinoResource.from_url(fake_trino, catalog="delta_lake")
    frame = resource.query("SELECT region, revenue FROM gold_retail.fct_sales")
    assert frame.to_dicts() == [{"region": "EU", "revenue": 120}, {"region": "US", "revenue": 80}]
    request = FakeTrino.received[0]
    assert request["x-trino-catalog"] == "delta_lake" and request["x-trino-user"] == "analyst"
    with pytest.raises(QueryError, match="missing_table' does not exist"):
        resource.query("SELECT * FROM gold_retail.missing_table")


def test_cli_query_with_the_trino_engine_sends_trino_sql(fake_trino, cli_env, lake_env):
    from lakehouse.cli import cli

    env = {**cli_env, "LAKEHOUSE_TRINO_URL": fake_trino, "LAKEHOUSE_TABLE_FORMAT": "iceberg"}
    sql = "SELECT region, CAST(sum(net_amount) AS BIGINT) AS revenue FROM gold_retail.fct_sales WHERE order_date >= DATE '2024-01-01' GROUP BY ALL"
    result = CliRunner().invoke(cli, ["query", "--engine", "trino", "--json", sql], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"region": "EU", "revenue": 120}, {"region": "US", "revenue": 80}]
    sent = FakeTrino.received[0]
    assert sent["x-trino-catalog"] == "iceberg"
    assert "GROUP BY ALL" not in sent["sql"] and "GROUP BY\n  1" in sent["sql"]  # Trino has no GROUP BY ALL


def test_resources_carry_the_trino_password_only_as_an_env_var(lake_env, monkeypatch):
    import dagster as dg

    from resources import build_resources

    monkeypatch.setenv("LAKEHOUSE_TRINO_URL", "https://trino.example:8443")
    monkeypatch.setenv("LAKEHOUSE_TRINO_PASSWORD", "s3cr3t-trino")
    trino = build_resources(get_settings())["trino"]
    assert isinstance(trino.password, dg.EnvVar) and trino.password.env_var_name == "LAKEHOUSE_TRINO_PASSWORD"
    assert (trino.host, trino.port, trino.http_scheme) == ("trino.example", 8443, "https")


# -- catalogs generated from the lake's settings (deploy/local/trino.sh, `make trino`) -------------


def lake_settings(monkeypatch, **extra):
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", "s3://lake/prod/warehouse")
    monkeypatch.setenv("LAKEHOUSE_LANDING", "s3://lake/prod/landing")
    monkeypatch.setenv("LAKEHOUSE_S3_ENDPOINT", "http://127.0.0.1:9000")
    monkeypatch.setenv("LAKEHOUSE_S3_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-id-123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-s3-key")
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    return get_settings()


def parse(text):
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_generated_catalogs_point_at_the_lake_and_keep_secrets_in_the_environment(lake_env, monkeypatch):
    from lakehouse.query.trino import trino_catalogs

    settings = lake_settings(
        monkeypatch,
        LAKEHOUSE_CATALOG_URI="postgresql+psycopg2://lake_user:pg-pa%24%24@db.internal:6543/lakecat",
        LAKEHOUSE_CATALOG_NAME="prod",
    )
    catalogs = trino_catalogs(settings)
    assert sorted(catalogs.files) == ["delta_lake.properties", "iceberg.properties"]
    iceberg = parse(catalogs.files["iceberg.properties"])
    assert iceberg["iceberg.jdbc-catalog.connection-url"] == "jdbc:postgresql://db.internal:6543/lakecat"
    assert iceberg["iceberg.jdbc-catalog.connection-user"] == "lake_user"
    assert iceberg["iceberg.jdbc-catalog.catalog-name"] == "prod"
    assert iceberg["iceberg.jdbc-catalog.connection-password"] == "${ENV:LAKEHOUSE_TRINO_CATALOG_PASSWORD}"
    assert iceberg["iceberg.jdbc-catalog.default-warehouse-dir"] == "s3://lake/prod/warehouse"
    delta = parse(catalogs.files["delta_lake.properties"])
    assert delta["hive.metastore.catalog.dir"] == "s3://lake/prod/trino-metastore"  # beside the warehouse
    for props in (iceberg, delta):
        assert props["s3.endpoint"] == "http://127.0.0.1:9000" and props["s3.path-style-access"] == "true"
        assert props["s3.aws-secret-key"] == "${ENV:LAKEHOUSE_S3_SECRET_ACCESS_KEY}"
    text = "".join(catalogs.files.values()) + repr(catalogs)
    assert "s3cr3t-s3-key" not in text and "pg-pa$$" not in text and "key-id-123" not in text
    assert catalogs.env == {
        "LAKEHOUSE_S3_ACCESS_KEY_ID": "key-id-123",
        "LAKEHOUSE_S3_SECRET_ACCESS_KEY": "s3cr3t-s3-key",
        "LAKEHOUSE_TRINO_CATALOG_PASSWORD": "pg-pa$$",
    }


@pytest.mark.parametrize("name", ["iceberg.properties", "delta_lake.properties"])
def test_generated_catalogs_set_every_property_of_the_compose_templates(lake_env, monkeypatch, name):
    from lakehouse.query.trino import trino_catalogs

    settings = lake_settings(monkeypatch, LAKEHOUSE_CATALOG_URI="postgresql://postgres@127.0.0.1:5432/lake")
    generated = parse(trino_catalogs(settings).files[name])
    # a catalog database without a password (trust, as in the tests) gets no password property
    expected = set(properties(CATALOG_DIR / name)) - {"iceberg.jdbc-catalog.connection-password"}
    assert expected <= set(generated)
    assert "iceberg.jdbc-catalog.connection-password" not in generated


def test_catalogs_need_s3_and_leave_out_iceberg_on_sqlite(lake_env, monkeypatch):
    from lakehouse.query.trino import trino_catalogs

    with pytest.raises(QueryError, match=r"Trino reads the lake from S3, and LAKEHOUSE_WAREHOUSE='/"):
        trino_catalogs(get_settings())
    assert sorted(trino_catalogs(lake_settings(monkeypatch)).files) == ["delta_lake.properties"]


def test_cli_trino_catalogs_writes_the_files(lake_env, monkeypatch, tmp_path):
    from lakehouse.cli import cli

    lake_settings(monkeypatch, LAKEHOUSE_CATALOG_URI="postgresql://postgres@127.0.0.1:5432/lake")
    out = tmp_path / "catalog"
    out.mkdir()
    (out / "stale.properties").write_text("connector.name=memory\n")
    result = CliRunner().invoke(cli, ["trino", "catalogs", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["delta_lake.properties", "iceberg.properties"]
    assert parse((out / "iceberg.properties").read_text())["iceberg.jdbc-catalog.connection-user"] == "postgres"


def test_register_tables_runs_the_statements_and_keeps_tables_already_registered(fake_trino, lake_env, monkeypatch):
    from lakehouse.query.trino import register_tables

    monkeypatch.setenv("LAKEHOUSE_TRINO_URL", fake_trino)
    settings = lake_settings(monkeypatch)
    names = ["already_there", "fct_sales", "raced"]  # raced: registered by another client meanwhile
    refs = [TableRef("gold", "retail", n) for n in names]
    assert register_tables(settings, refs) == [TableRef("gold", "retail", "fct_sales")]
    sent = [r["sql"] for r in FakeTrino.received]
    assert sent[0].startswith('CREATE SCHEMA IF NOT EXISTS "delta_lake"."gold_retail"')
    assert sent[1] == 'SHOW TABLES FROM "delta_lake"."gold_retail"'
    assert [s for s in sent if "register_table" in s and "already_there" in s] == []  # not even tried
    assert len(sent) == 4 and all(r["x-trino-catalog"] == "delta_lake" for r in FakeTrino.received)


# -- authentication and TLS of a server (deploy/local/trino.sh, tests/trinoserver.py) --------------


def test_password_file_holds_pbkdf2_hashes_trino_checks_and_no_password():
    import hashlib

    from lakehouse.query.trino import password_file, trino_passwords

    env = {
        "LAKEHOUSE_TRINO_PASSWORD": "svc-pw-1",
        "LAKEHOUSE_TRINO_PASSWORD_ANALYST": "an-pw-2",
        "LAKEHOUSE_TRINO_PASSWORD_STEWARD": "",  # empty: no login
        "OTHER": "x",
    }
    passwords = trino_passwords(env)
    assert passwords == {"lakehouse": "svc-pw-1", "analyst": "an-pw-2"}
    text = password_file(passwords)
    assert "svc-pw-1" not in text and "an-pw-2" not in text
    for line in text.splitlines():
        # user:iterations:salt:hash, hex, PBKDF2WithHmacSHA1 (Trino's file authenticator)
        user, iterations, salt, digest = line.split(":")
        assert int(iterations) >= 1000 and len(salt) == 32 and len(digest) == 64
        expected = hashlib.pbkdf2_hmac("sha1", passwords[user].encode(), bytes.fromhex(salt), int(iterations), 32)
        assert digest == expected.hex()
    with pytest.raises(QueryError, match="not a valid Trino user"):
        password_file({"a:b": "x"})


def test_tls_certificate_is_signed_by_the_ca_for_the_hosts_and_kept_while_valid(tmp_path):
    import ssl

    from cryptography import x509

    from lakehouse.query.trino import write_tls

    tls = write_tls(tmp_path / "tls", ("127.0.0.1", "localhost"))
    assert oct(tls.keystore.stat().st_mode & 0o777) == "0o600"
    pem = tls.keystore.read_text()
    assert pem.count("BEGIN CERTIFICATE") == 2 and "BEGIN PRIVATE KEY" in pem
    assert "PRIVATE KEY" not in tls.ca_file.read_text()
    cert = x509.load_pem_x509_certificate(tls.keystore.read_bytes())
    ca = x509.load_pem_x509_certificate(tls.ca_file.read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n.value) for n in names} == {"127.0.0.1", "localhost"}
    # a TLS client verifying with the CA accepts it for 127.0.0.1 (what the Trino client does)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tls.keystore)
    client = ssl.create_default_context(cafile=str(tls.ca_file))
    assert client.verify_mode == ssl.CERT_REQUIRED
    # kept across starts (clients keep trusting it), replaced when a host is missing
    assert write_tls(tmp_path / "tls", ("127.0.0.1",)).ca_file.read_bytes() == tls.ca_file.read_bytes()
    before = tls.ca_file.read_bytes()
    write_tls(tmp_path / "tls", ("127.0.0.1", "trino"))
    assert tls.ca_file.read_bytes() != before


def test_trino_resource_verifies_https_with_the_ca_file_whatever_requests_env_says(monkeypatch, tmp_path):
    from lakehouse.query.trino import http_session

    resource = TrinoResource.from_url("https://analyst@trino.example", password="pw", ca_file="/etc/ca.pem")
    assert (resource.port, resource.http_scheme, resource.user, resource.ca_file) == (
        8443,
        "https",
        "analyst",
        "/etc/ca.pem",
    )
    with pytest.raises(QueryError, match=r"LAKEHOUSE_TRINO_CA_FILE='/etc/ca\.pem' is not a file"):
        resource.connect()
    # requests lets REQUESTS_CA_BUNDLE override a session's verify: not this session's
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/somewhere/else.pem")
    session = http_session(str(tmp_path / "ca.pem"))
    merged = session.merge_environment_settings("https://trino.example:8443/v1/statement", {}, None, None, None)
    assert merged["verify"] == str(tmp_path / "ca.pem")
    assert http_session(None).merge_environment_settings("https://x", {}, None, None, None)["verify"] is True


def test_settings_read_the_trino_ca_file_and_keep_the_password_out_of_repr(lake_env, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_TRINO_URL", "https://lakehouse@127.0.0.1:8443")
    monkeypatch.setenv("LAKEHOUSE_TRINO_CA_FILE", "/state/trino/etc/tls/ca.pem")
    monkeypatch.setenv("LAKEHOUSE_TRINO_PASSWORD", "pw-not-shown-123")
    settings = get_settings()
    assert settings.trino_ca_file == "/state/trino/etc/tls/ca.pem" and settings.trino_password == "pw-not-shown-123"
    assert "pw-not-shown-123" not in repr(settings)


def test_rules_read_the_key_from_the_key_table_as_the_service_user():
    import pyarrow as pa

    from lakehouse.governance.masking import TRINO_KEY_TABLE, trino_rules
    from lakehouse.governance.policy import load_policy

    ref = TableRef("silver", "retail", "customers")
    schema = pa.schema([("customer_id", pa.int64()), ("email", pa.string()), ("city", pa.string())])
    rules = trino_rules(load_policy(), [(ref, schema, {"email": "email"}, "iceberg")], key_table=TRINO_KEY_TABLE)
    analyst = next(r for r in rules["tables"] if r.get("group") == "analyst")
    masks = {c["name"]: c for c in analyst["columns"]}
    assert set(masks) == {"customer_id", "email"}
    for column in masks.values():
        assert f"(SELECT value FROM {TRINO_KEY_TABLE})" in column["mask"]
        assert column["mask_environment"] == {"user": "lakehouse"}  # the key table is read as the service user
        sqlglot.parse_one(column["mask"], read="trino")
    # only the service users: procedures (register_table), catalog/table functions, other users'
    # queries and system information; everyone else may run queries and see their own
    assert rules["procedures"] == [{"user": "lakehouse|admin", "privileges": ["EXECUTE", "GRANT_EXECUTE"]}]
    assert [r.get("user") for r in rules["functions"]] == ["lakehouse|admin"]
    assert rules["queries"][-1] == {"allow": ["execute"]}
    assert rules["system_information"] == [{"user": "lakehouse|admin", "allow": ["read", "write"]}]
    assert {"group": "analyst|steward", "catalog": "iceberg|delta_lake", "allow": "read-only"} in rules["catalogs"]
