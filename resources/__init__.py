"""Resources per environment, built from ``lakehouse.settings``.

Secrets (the S3 keys, the catalog URI with its password, the webhook URL, the SMTP and Trino
passwords) are passed only as ``dg.EnvVar``: Dagster resolves them in the process that runs the
step, and they never appear in the definitions, the UI, the job snapshots or the event log.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource

from lakehouse.alerts import AlertResource
from lakehouse.compute import ComputeResource
from lakehouse.dbt.project import DBT_PROJECT_DIR
from lakehouse.exceptions import SettingsError
from lakehouse.governance.contracts import ContractIOManager
from lakehouse.resource import LakeResource
from lakehouse.settings import Settings, get_settings, redact

__all__ = ["build_resources", "secret"]


def secret(*names: str) -> dg.EnvVar | None:
    """``dg.EnvVar`` of the first of ``names`` that is set, or None."""
    for name in names:
        if os.environ.get(name):
            return dg.EnvVar(name)
    return None


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    """The resource map for the configured environment (local folder or S3 alike)."""
    settings = settings or get_settings()
    secrets = {
        "s3_access_key_id": secret("LAKEHOUSE_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        "s3_secret_access_key": secret("LAKEHOUSE_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        # a Postgres catalog URI holds its password: the variable's name, not its value, goes to
        # Dagster (settings built in code with another URI keep theirs, which the environment lacks)
        "catalog_uri": (
            secret("LAKEHOUSE_CATALOG_URI") if os.environ.get("LAKEHOUSE_CATALOG_URI") == settings.catalog_uri else None
        ),
    }
    if secrets["catalog_uri"] is None and redact(settings.catalog_uri) != settings.catalog_uri:
        raise SettingsError(
            f"the catalog URI {redact(settings.catalog_uri)!r} holds a password but is not LAKEHOUSE_CATALOG_URI: "
            "a secret reaches Dagster only from the environment"
        )
    lake = LakeResource.from_settings(settings, **{k: v for k, v in secrets.items() if v is not None})
    resources: dict[str, Any] = {
        "lake": lake,
        # the lake's IO manager, refusing an output that breaks its data contract before it is written
        "io_manager": ContractIOManager(lake=lake),
        "compute": ComputeResource(spark_master=settings.spark_master),
        # the dbt of this environment, whether or not its bin folder is on PATH
        "dbt": DbtCliResource(
            project_dir=str(DBT_PROJECT_DIR),
            profiles_dir=str(DBT_PROJECT_DIR),
            dbt_executable=str(Path(sys.executable).parent / "dbt"),
        ),
        "alerts": AlertResource.from_settings(
            settings,
            **{
                k: v
                for k, v in {
                    "webhook_url": secret("LAKEHOUSE_ALERT_WEBHOOK_URL"),
                    "smtp_password": secret("LAKEHOUSE_ALERT_SMTP_PASSWORD"),
                }.items()
                if v is not None
            },
        ),
    }
    if settings.trino_url:
        from lakehouse.query.trino import CATALOGS, TrinoResource

        resources["trino"] = TrinoResource.from_url(
            settings.trino_url,
            password=secret("LAKEHOUSE_TRINO_PASSWORD"),
            catalog=CATALOGS[settings.table_format],
            ca_file=settings.trino_ca_file,
        )
    return resources
