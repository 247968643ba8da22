from pathlib import Path

import pytest

from lakehouse.exceptions import SettingsError
from lakehouse.settings import get_settings


def test_defaults_need_no_service(tmp_path):
    s = get_settings({"LAKEHOUSE_HOME": str(tmp_path)})
    assert s.home == tmp_path
    assert s.warehouse == str(tmp_path / "warehouse")
    assert s.landing == str(tmp_path / "landing")
    assert s.table_format == "delta"
    assert s.catalog_uri == f"sqlite:///{tmp_path / 'iceberg_catalog.db'}"
    assert s.dagster_home == tmp_path / "dagster"
    assert not s.warehouse_is_s3


def test_default_home_is_the_project_state_folder():
    s = get_settings({})
    assert s.home == Path(__file__).resolve().parents[2] / ".lakehouse"


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"LAKEHOUSE_TABLE_FORMAT": "parquet"},
            r"LAKEHOUSE_TABLE_FORMAT='parquet' is not valid; accepted values: delta, iceberg",
        ),
        ({"LAKEHOUSE_WAREHOUSE": "gs://b/x"}, r"LAKEHOUSE_WAREHOUSE='gs://b/x' is not valid"),
        ({"LAKEHOUSE_WAREHOUSE": "s3://"}, r"bucket name is missing"),
        ({"LAKEHOUSE_S3_ALLOW_HTTP": "maybe"}, r"LAKEHOUSE_S3_ALLOW_HTTP='maybe' is not valid"),
        ({"LAKEHOUSE_S3_ENDPOINT": "http://127.0.0.1:9000"}, r"LAKEHOUSE_S3_ALLOW_HTTP is not true"),
        ({"LAKEHOUSE_S3_ENDPOINT": "127.0.0.1:9000"}, r"LAKEHOUSE_S3_ENDPOINT='127.0.0.1:9000' is not valid"),
        ({"LAKEHOUSE_CATALOG_URI": "mysql://x"}, r"LAKEHOUSE_CATALOG_URI='mysql://x' is not valid"),
        ({"LAKEHOUSE_START_DATE": "yesterday"}, r"LAKEHOUSE_START_DATE='yesterday' is not valid"),
        ({"LAKEHOUSE_QUERY_ENGINE": "trino"}, r"needs LAKEHOUSE_TRINO_URL"),
    ],
)
def test_invalid_settings_name_the_variable_and_accepted_values(tmp_path, env, message):
    with pytest.raises(SettingsError, match=message):
        get_settings({"LAKEHOUSE_HOME": str(tmp_path), **env})


def test_s3_settings_and_secrets_stay_out_of_repr(tmp_path):
    s = get_settings(
        {
            "LAKEHOUSE_HOME": str(tmp_path),
            "LAKEHOUSE_WAREHOUSE": "s3://lake/prod",
            "LAKEHOUSE_S3_ENDPOINT": "http://127.0.0.1:8333",
            "LAKEHOUSE_S3_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "very-secret-value",
        }
    )
    assert s.warehouse_is_s3 and s.s3.endpoint_host == "127.0.0.1:8333"
    assert s.s3.secret_access_key == "very-secret-value"
    assert "very-secret-value" not in repr(s) and "AKIDEXAMPLE" not in repr(s)


# -- secrets: one redaction helper, and no setting's secret in a repr or an error message ----------------


@pytest.mark.parametrize(
    "text, shown",
    [
        ("postgresql+psycopg2://lake:pw-123@db:5432/cat", "postgresql+psycopg2://lake:***@db:5432/cat"),
        ("redis://:pw-123@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("sqlite:////tmp/x/iceberg_catalog.db", "sqlite:////tmp/x/iceberg_catalog.db"),
        ("http://analyst@trino:8080", "http://analyst@trino:8080"),
        (
            "postgresql://db/cat?user=lake&password=pw-123&sslmode=require",
            "postgresql://db/cat?user=lake&password=***&sslmode=require",
        ),
        (
            "(psycopg2.OperationalError) for 'postgresql://lake:pw-123@db/cat' and 'redis://u:pw-456@r:6379'",
            "(psycopg2.OperationalError) for 'postgresql://lake:***@db/cat' and 'redis://u:***@r:6379'",
        ),
    ],
)
def test_redact_hides_the_password_of_every_uri_and_keeps_where_and_who(text, shown):
    from lakehouse.settings import redact

    assert redact(text) == shown


def test_redact_hides_named_secret_values_too():
    from lakehouse.settings import redact

    message = "InvalidURL: URL can't contain control characters. '/hooks/T0/B0/tok3n x' (found at least ' ')"
    assert redact(message, ["/hooks/T0/B0/tok3n x", None, ""]) == (
        "InvalidURL: URL can't contain control characters. '***' (found at least ' ')"
    )


SECRET_ENV = {
    "LAKEHOUSE_CATALOG_URI": "postgresql+psycopg2://lake:catalog-pw-42@db:5432/cat",
    "LAKEHOUSE_WAREHOUSE": "s3://lake/prod",
    "LAKEHOUSE_S3_ENDPOINT": "https://s3.example.com",
    "LAKEHOUSE_S3_ACCESS_KEY_ID": "AKIDSECRET42",
    "LAKEHOUSE_S3_SECRET_ACCESS_KEY": "s3-secret-42",
    "LAKEHOUSE_ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0/B0/hook-token-42",
    "LAKEHOUSE_ALERT_SMTP_HOST": "mail.example.com",
    "LAKEHOUSE_ALERT_SMTP_USER": "alerts",
    "LAKEHOUSE_ALERT_SMTP_PASSWORD": "smtp-pw-42",
    "LAKEHOUSE_ALERT_EMAIL_TO": "oncall@example.com",
    "LAKEHOUSE_MASKING_KEY": "masking-key-42",
    "LAKEHOUSE_REDIS_URL": "redis://:redis-pw-42@cache:6379/0",
}
SECRET_VALUES = (
    "catalog-pw-42",
    "trino-pw-42",
    "AKIDSECRET42",
    "s3-secret-42",
    "hook-token-42",
    "smtp-pw-42",
    "masking-key-42",
    "redis-pw-42",
)


def test_no_secret_setting_shows_in_the_repr_of_settings(tmp_path):
    s = get_settings({"LAKEHOUSE_HOME": str(tmp_path), **SECRET_ENV})
    assert s.catalog_uri == SECRET_ENV["LAKEHOUSE_CATALOG_URI"]  # the value itself is intact
    text = repr(s)
    assert [v for v in SECRET_VALUES if v in text] == []
    assert "catalog_uri='postgresql+psycopg2://lake:***@db:5432/cat'" in text  # where and who stay visible


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"LAKEHOUSE_CATALOG_URI": "mysql://lake:catalog-pw-42@db/cat"},
            r"LAKEHOUSE_CATALOG_URI='mysql://lake:\*\*\*@db/cat'",
        ),
        (
            {"LAKEHOUSE_S3_ENDPOINT": "ftp://AKIDSECRET42:s3-secret-42@s3"},
            r"LAKEHOUSE_S3_ENDPOINT='ftp://\*\*\*:\*\*\*@s3'",
        ),
        ({"LAKEHOUSE_WAREHOUSE": "gs://u:s3-secret-42@b/x"}, r"LAKEHOUSE_WAREHOUSE='gs://u:\*\*\*@b/x'"),
        ({"LAKEHOUSE_ALERT_WEBHOOK_URL": SECRET_ENV["LAKEHOUSE_ALERT_WEBHOOK_URL"] + " x"}, r"without spaces"),
        ({"LAKEHOUSE_ALERT_WEBHOOK_URL": "ftp://hooks.example.com/hook-token-42"}, r"an http\(s\) URL"),
        ({"LAKEHOUSE_REDIS_URL": "http://:redis-pw-42@cache"}, r"LAKEHOUSE_REDIS_URL is not valid"),
        (
            {"LAKEHOUSE_S3_ENDPOINT": "https://AKIDSECRET42:s3-secret-42@s3.example.com"},
            r"LAKEHOUSE_S3_ENDPOINT='https://\*\*\*:\*\*\*@s3.example.com' is not valid: it holds a password; "
            r"set LAKEHOUSE_S3_ACCESS_KEY_ID/LAKEHOUSE_S3_SECRET_ACCESS_KEY instead",
        ),
        (
            {"LAKEHOUSE_TRINO_URL": "https://analyst:trino-pw-42@trino:8443"},
            r"LAKEHOUSE_TRINO_URL='https://analyst:\*\*\*@trino:8443' is not valid: .* LAKEHOUSE_TRINO_PASSWORD",
        ),
    ],
)
def test_an_invalid_setting_names_the_variable_but_not_the_secret(tmp_path, change, message):
    with pytest.raises(SettingsError, match=message) as error:
        get_settings({"LAKEHOUSE_HOME": str(tmp_path), **SECRET_ENV, **change})
    assert [v for v in SECRET_VALUES if v in str(error.value)] == []
