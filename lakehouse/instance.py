"""The Dagster instance of the embedded default: ``$DAGSTER_HOME`` under the state folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lakehouse.settings import Settings, project_root

__all__ = ["prepare_dagster_home"]


def prepare_dagster_home(settings: Settings) -> Path:
    """Create ``DAGSTER_HOME`` (unless the environment already names one) holding our dagster.yaml.

    Returns the folder and sets ``os.environ["DAGSTER_HOME"]`` so in-process runs, the webserver
    and the daemon all use the same SQLite storage.
    """
    existing = os.environ.get("DAGSTER_HOME")
    home = Path(existing) if existing else settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    source = project_root() / "dagster.yaml"
    if not existing and source.is_file() and (not config.is_file() or config.read_bytes() != source.read_bytes()):
        shutil.copyfile(source, config)
    elif not config.is_file():
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    # create the SQLite storage now, once: a webserver, a daemon and their code servers starting
    # together on an empty folder race to create it ("alembic_version has more than one head")
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)):
        pass
    return home
