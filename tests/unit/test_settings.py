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
