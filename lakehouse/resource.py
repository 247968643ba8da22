"""``LakeResource``: the lake's settings as a Dagster resource, for assets and checks that use the
table layer directly (merges, reconciliation checks) and for the IO manager.

Secrets reach it only through ``dg.EnvVar`` (see ``resources/``): the S3 keys and the catalog URI
(a Postgres URI carries its password). A resource's field values are shown in the UI and kept in
every job snapshot Dagster stores; an ``EnvVar`` is kept as the variable's name and resolved only
in the process that runs the step. Its fields mirror :class:`~lakehouse.settings.Settings`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg

from lakehouse.naming import TableRef
from lakehouse.settings import S3Settings, Settings, TableFormat, get_settings
from lakehouse.tables import Lake, TableStore

__all__ = ["LakeResource"]


class LakeResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where the lake lives and how to reach it."""

    home: str
    warehouse: str
    landing: str
    table_format: str = "delta"
    catalog_uri: str
    catalog_name: str = "lakehouse"
    start_date: str = "2024-01-01"
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_allow_http: bool = False
    s3_path_style: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, **secrets: object) -> LakeResource:
        """Build from settings; pass ``s3_access_key_id=dg.EnvVar(...)``, ``catalog_uri=dg.EnvVar(...)``
        etc. for secrets (they replace the plain values of the same fields)."""
        values: dict[str, object] = {
            "home": str(settings.home),
            "warehouse": settings.warehouse,
            "landing": settings.landing,
            "table_format": settings.table_format,
            "catalog_uri": settings.catalog_uri,
            "catalog_name": settings.catalog_name,
            "start_date": settings.start_date.isoformat(),
            "s3_endpoint": settings.s3.endpoint,
            "s3_region": settings.s3.region,
            "s3_allow_http": settings.s3.allow_http,
            "s3_path_style": settings.s3.path_style,
        }
        return cls(**{**values, **secrets})  # type: ignore[arg-type]

    def settings(self) -> Settings:
        base = get_settings({"LAKEHOUSE_HOME": self.home})
        fmt: TableFormat = "iceberg" if self.table_format == "iceberg" else "delta"
        return base.with_overrides(
            home=Path(self.home),
            warehouse=self.warehouse,
            landing=self.landing,
            table_format=fmt,
            catalog_uri=self.catalog_uri,
            catalog_name=self.catalog_name,
            start_date=dt.date.fromisoformat(self.start_date),
            s3=S3Settings(
                endpoint=self.s3_endpoint,
                region=self.s3_region,
                access_key_id=self.s3_access_key_id,
                secret_access_key=self.s3_secret_access_key,
                allow_http=self.s3_allow_http,
                path_style=self.s3_path_style,
            ),
        )

    def lake(self) -> Lake:
        return Lake(self.settings())

    def store(self, ref: TableRef, declared: TableFormat | None = None) -> TableStore:
        """The store for writing ``ref`` (its declared format, else the lake's)."""
        return self.lake().store_for(ref, declared)
