"""A real Dagster webserver (and daemon) for e2e tests, started with the commands of `lakehouse ui`
(lakehouse.processes) on a free port of 127.0.0.1, driven through its GraphQL API."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = PROJECT_ROOT / "workspace.yaml"
LOCATION = {"repositoryLocationName": "lakehouse", "repositoryName": "__repository__"}

RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status parentRunId rootRunId tags { key value } assetSelection { path } } }
    ... on PythonError { message }
  }
}
"""
MATERIALIZATIONS = """
query Materializations($keys: [AssetKeyInput!], $partition: String!) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    assetMaterializations(partitions: [$partition]) { runId partition timestamp }
  }
}
"""
TICKS = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 20) { status timestamp runIds skipReason error { message } } } }
  }
}
"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 1.0,
    explain: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy; on time-out fail naming ``what`` and, when
    given, ``explain()`` (what is still missing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f": {explain()}" if explain else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def tags_of(run: Mapping[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


@dataclass
class DagsterUI:
    url: str
    home: Path
    procs: list[subprocess.Popen[bytes]]
    log: Path
    started: float = field(default_factory=time.monotonic)

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        from lakehouse.backfill import graphql

        return graphql(self.url, query, dict(variables or {}), timeout=60)

    def runs(self, **filter_: Any) -> list[dict[str, Any]]:
        data = self.graphql(RUNS, {"filter": filter_})["runsOrError"]
        assert data["__typename"] == "Runs", data
        return list(data["results"])

    def materialized(self, keys: Sequence[str], partition: str) -> dict[str, list[dict[str, Any]]]:
        """Materialisations of ``keys`` ("layer/domain/table") for one partition, by key."""
        variables = {"keys": [{"path": k.split("/")} for k in keys], "partition": partition}
        nodes = self.graphql(MATERIALIZATIONS, variables)["assetNodes"]
        return {"/".join(n["assetKey"]["path"]): n["assetMaterializations"] for n in nodes}

    def ticks(self, sensor: str) -> list[dict[str, Any]]:
        data = self.graphql(TICKS, {"selector": {**LOCATION, "sensorName": sensor}})["sensorOrError"]
        assert data["__typename"] == "Sensor", data
        return list(data["sensorState"]["ticks"])

    def launch(self, keys: Sequence[str], partition: str, tags: Mapping[str, str] | None = None) -> str:
        """Launch a run of ``keys`` for ``partition``, as someone would from the UI; returns its id."""
        params = {
            "selector": {
                **LOCATION,
                "jobName": "__ASSET_JOB",
                "assetSelection": [{"path": k.split("/")} for k in keys],
            },
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in {"dagster/partition": partition, **(tags or {})}.items()]
            },
        }
        data = self.graphql(LAUNCH, {"params": params})["launchRun"]
        assert data["__typename"] == "LaunchRunSuccess", data
        return str(data["run"]["runId"])

    def stop(self) -> None:
        """SIGTERM the webserver and daemon process groups (their code servers and run workers are in
        them), then check that nothing of them is left and the port is closed."""
        from lakehouse.processes import group_alive, stop

        groups = [p.pid for p in self.procs]
        stop(self.procs, grace=30)
        deadline = time.monotonic() + 5  # SIGKILLed members may take a moment to go
        while any(map(group_alive, groups)) and time.monotonic() < deadline:
            time.sleep(0.2)
        leftovers = [g for g in groups if group_alive(g)]
        for pgid in leftovers:
            os.killpg(pgid, signal.SIGKILL)
        assert not leftovers, f"process groups still alive after SIGTERM + SIGKILL: {leftovers}"
        port = int(self.url.rsplit(":", 1)[1])
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open after stop"


def server_env(home: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The servers' environment: this one without any LAKEHOUSE_*/DAGSTER_HOME of the test session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_") and k != "DAGSTER_HOME"}
    env.update({"LAKEHOUSE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), **extra})
    return env


def start_ui(
    home: Path,
    env: Mapping[str, str],
    *,
    port: int,
    daemon: bool = True,
    read_only: bool = False,
    instance_yaml: Path | None = PROJECT_ROOT / "dagster.yaml",
    timeout: float = 120.0,
) -> DagsterUI:
    """Start the webserver (+ daemon) on ``home`` and wait until GraphQL answers.

    ``instance_yaml`` is copied into ``$DAGSTER_HOME`` (None: keep the one there). The instance's
    SQLite storage is created here, once, before the servers start: started together on an empty
    folder they race to create it ("alembic_version has more than one head").
    """
    import dagster as dg

    from lakehouse.processes import dagster_commands, start

    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if instance_yaml is not None:
        shutil.copyfile(instance_yaml, dagster_home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(dagster_home)):
        pass
    commands = dagster_commands(str(WORKSPACE), port=port, daemon=daemon)
    if read_only:
        commands[0].append("--read-only")
    log = home / "servers.log"
    with log.open("ab") as out:
        procs = start(commands, cwd=str(PROJECT_ROOT), env=env, stdout=out)
    ui = DagsterUI(url=f"http://127.0.0.1:{port}", home=home, procs=procs, log=log)

    def answers() -> bool:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{p.args[0]} exited with {p.returncode}; see {log}")
        try:
            return ui.graphql("{ version }")["version"] is not None
        except Exception:
            return False

    try:
        wait_for(f"the Dagster webserver on {ui.url} to answer GraphQL", answers, timeout=timeout, interval=0.5)
    except BaseException:
        ui.stop()
        raise
    return ui
