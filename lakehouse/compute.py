"""Where heavy transformations run: polars in this process (the default), or Spark (local or a
cluster) when ``LAKEHOUSE_SPARK_MASTER`` is set. Spark is an optional extra (``pip install
.[spark]``, Java 17): nothing imports pyspark unless a Spark master is configured.

Without Delta/Iceberg jars Spark reads a table's current data files (listed by the TableStore)
and hands its result back to be committed through the TableStore, so there is one commit
protocol. With the connectors installed (``io.delta:delta-spark``, ``iceberg-spark-runtime``,
``hadoop-aws``), point Spark at the catalog/locations directly instead; table names and locations
follow ARCHITECTURE.md either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from lakehouse.exceptions import SettingsError

__all__ = ["ComputeResource", "spark_config"]


def spark_config(master: str) -> dict[str, str]:
    """A Spark session in UTC without the UI; a local one stays on loopback, a cluster's executors
    reach the driver at this host's name (set ``SPARK_LOCAL_IP``/``spark.driver.host`` to change)."""
    loopback = {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}
    return {
        "spark.master": master,
        "spark.app.name": "lakehouse",
        **(loopback if master.startswith("local") else {}),
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }


class ComputeResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The compute engine for jobs that can run on Spark."""

    spark_master: str | None = None

    @property
    def uses_spark(self) -> bool:
        return bool(self.spark_master)

    def spark(self) -> Any:
        """The process's Spark session (created once, by dagster-pyspark's builder)."""
        if not self.spark_master:
            raise SettingsError("no Spark master configured: set LAKEHOUSE_SPARK_MASTER (e.g. local[2])")
        from dagster_pyspark.resources import spark_session_from_config

        return spark_session_from_config(spark_config(self.spark_master))  # type: ignore[no-untyped-call]

    def read_parquet(self, files: Sequence[str], root: str | None) -> Any:
        """A Spark DataFrame over data files; ``root`` recovers partition columns kept in paths."""
        reader = self.spark().read
        if root is not None:
            reader = reader.option("basePath", root)
        return reader.parquet(*files)
