"""The lake refreshes itself under the real Dagster daemon: files land, bronze, silver and gold follow
for that day without anyone clicking; an unchanged file starts nothing; a run worker killed
mid-partition is recovered by run retries with the same table content; a failing run alerts once
per channel.

One webserver + daemon for the module (the commands of `lakehouse ui`, a copy of the project's
dagster.yaml, a temporary state folder, sensors every few seconds), observed through GraphQL.
The lake's partitions start yesterday and today's files land: the situation of every morning.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from dagster_ui import PROJECT_ROOT, DagsterUI, free_port, server_env, start_ui, tags_of, wait_for
from servers import RECIPIENTS, AlertServers, alert_servers
from snapshots import differences, table_contents

# one webserver + daemon for the module: its tests run on one worker
pytestmark = pytest.mark.xdist_group("daemon")

PAUSE_AT = "bronze/retail/orders__quarantine"  # the second table the orders step writes
LANDED_SOURCES = ("stores", "customers", "orders", "order_lines", "web_logs", "events")
PRODUCTS = ["bronze/retail/products", "bronze/retail/products__quarantine"]
SENSOR_INTERVAL = "3"
FLOW_TIMEOUT = 300.0
#: the project's dagster.yaml with run monitoring polling every 2 s instead of 30 (the only change)
FAST_MONITORING = {"poll_interval_seconds": 2, "free_slots_after_run_end_seconds": 2}


def _instance_yaml(folder: Path) -> Path:
    import yaml

    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    config["run_monitoring"] = {**config["run_monitoring"], **FAST_MONITORING}
    path = folder / "dagster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_shipped_instance_frees_the_pool_slots_of_a_dead_run() -> None:
    """A killed run worker never releases its concurrency slots; with ``default_limit: 1`` per table
    every later writer of that table would wait forever (the daemon test found it)."""
    import yaml

    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_retries"]["enabled"] and config["run_retries"]["max_retries"] == 2
    assert 0 < config["run_monitoring"].get("free_slots_after_run_end_seconds", 0) <= 300


@dataclasses.dataclass
class Flow:
    """The daemon, the day that landed, and what the test saw while it was being loaded."""

    ui: DagsterUI
    today: str
    yesterday: str
    settings: Any  # of the lake the daemon works on
    staging: Any  # settings of the folder the files were generated in
    alerts: AlertServers
    api_url: str
    api_key: str
    api: Any  # the product API the daemon fetches from
    killed: dict[str, Any]


def _landing_runs(ui: DagsterUI) -> list[dict[str, Any]]:
    return ui.runs(tags=[{"key": "lakehouse/trigger", "value": "landing"}])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie is dead; its parent (the code server) reaps it


def _kill_paused_worker(ui: DagsterUI, settings: Any, pause_dir: Path) -> dict[str, Any]:
    """Wait for the pause hook, record the half-written partition, SIGKILL the run worker."""
    import dagster as dg

    from lakehouse.naming import TableRef
    from lakehouse.tables import Lake

    paused = wait_for(
        f"a run to start writing {PAUSE_AT} (the pause hook in tests/hooks)",
        lambda: json.loads((pause_dir / "paused.json").read_text()) if (pause_dir / "paused.json").is_file() else None,
        timeout=FLOW_TIMEOUT,
        explain=lambda: ui.log.read_text()[-3000:],
    )
    lake = Lake(settings)
    last_writer = {}
    for name in ("orders", "orders__quarantine"):
        ref = TableRef("bronze", "retail", name)
        store = lake.store()
        history = store.history(ref, limit=1) if store.exists(ref) else []
        last_writer[name] = history[0].user_metadata.get("dagster_run_id") if history else None
    with dg.DagsterInstance.from_config(str(settings.home / "dagster")) as instance:
        messages = [e.message or "" for e in instance.all_logs(paused["run_id"])]
    workers = {int(pid) for m in messages for pid in re.findall(r"\(pid: (\d+)\)", m)}
    pids = sorted({paused["pid"], *workers})
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_for(f"the killed run worker processes {pids} to be gone", lambda: not any(map(_alive, pids)), timeout=30)
    return {**paused, "pids": pids, "last_writer": last_writer, "killed_at": time.time()}


@pytest.fixture(scope="module", params=["delta"])
def flow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    from lakehouse.settings import get_settings
    from lakehouse.simulator import SimulationConfig, generate
    from lakehouse.simulator.api import ProductApi, serve_products
    from lakehouse.simulator.retail import load_products

    fmt = str(request.param)
    base = tmp_path_factory.mktemp(f"daemon-{fmt}")
    home, staging_home, pause_dir = base / "lake", base / "staging", base / "pause"
    pause_dir.mkdir()
    today = dt.datetime.now(dt.UTC).date()
    yesterday = today - dt.timedelta(days=1)
    lake_env = {"LAKEHOUSE_TABLE_FORMAT": fmt, "LAKEHOUSE_START_DATE": yesterday.isoformat()}
    staging = get_settings({**lake_env, "LAKEHOUSE_HOME": str(staging_home)})
    generate(staging, SimulationConfig(start=today, days=1, seed=11, scale=0.25))
    api = ProductApi(versions=load_products(staging), api_key=secrets.token_urlsafe(16))
    api_key = api.api_key
    with ExitStack() as stack:
        api_url = stack.enter_context(serve_products(api))
        alerts = stack.enter_context(alert_servers(base / "alerts.log"))
        port = free_port()
        env = server_env(
            home,
            {
                **lake_env,
                **alerts.env(f"http://127.0.0.1:{port}"),
                "LAKEHOUSE_SENSOR_INTERVAL": SENSOR_INTERVAL,
                "RETAIL_API_URL": api_url,
                "RETAIL_API_KEY": api_key,
                "PYTHONPATH": os.pathsep.join(
                    [str(Path(__file__).resolve().parent.parent / "hooks"), os.environ.get("PYTHONPATH", "")]
                ).rstrip(os.pathsep),
                "LAKEHOUSE_TEST_PAUSE_DIR": str(pause_dir),
            },
        )
        (pause_dir / "armed").write_text(PAUSE_AT)
        ui = start_ui(home, env, port=port, instance_yaml=_instance_yaml(base))
        stack.callback(ui.stop)
        wait_for(
            "the daemon to evaluate the landing sensor",
            lambda: any(t["status"] in ("SKIPPED", "SUCCESS") for t in ui.ticks("retail_landing_sensor")),
            timeout=120,
            explain=lambda: ui.log.read_text()[-3000:],
        )
        settings = get_settings({**lake_env, "LAKEHOUSE_HOME": str(home)})
        # the day lands: one rename, so the sensor never sees half of it
        Path(settings.landing).mkdir(parents=True, exist_ok=True)
        os.rename(Path(staging.landing) / "retail", Path(settings.landing) / "retail")
        # the product catalogue is an API, not a file: its daily fetch is launched like from the UI
        ui.launch(PRODUCTS, today.isoformat())
        killed = _kill_paused_worker(ui, settings, pause_dir)
        yield Flow(
            ui=ui,
            today=today.isoformat(),
            yesterday=yesterday.isoformat(),
            settings=settings,
            staging=staging,
            alerts=alerts,
            api_url=api_url,
            api_key=api_key,
            api=api,
            killed=killed,
        )


def _retail_keys(ui: DagsterUI, layers: tuple[str, ...]) -> list[str]:
    nodes = ui.graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]
    paths = [n["assetKey"]["path"] for n in nodes]
    return sorted("/".join(p) for p in paths if p[0] in layers and p[1] == "retail")


def test_a_landed_day_is_loaded_and_refreshed_by_the_daemon_alone(flow: Flow) -> None:
    ui = flow.ui
    keys = _retail_keys(ui, ("bronze", "silver", "gold"))
    assert {"bronze/retail/orders", "silver/retail/orders", "gold/retail/fct_sales"} <= set(keys)
    state: dict[str, Any] = {}

    def all_materialised() -> bool:
        done = ui.materialized(keys, flow.today)
        state["missing"] = sorted(k for k in keys if not done.get(k))
        state["done"] = done
        return not state["missing"]

    wait_for(
        f"bronze, silver and gold of {flow.today} to be materialised",
        all_materialised,
        timeout=FLOW_TIMEOUT,
        interval=2,
        explain=lambda: f"still missing: {state.get('missing')}",
    )
    runs = {r["runId"]: r for r in ui.runs()}
    landing = [r for r in runs.values() if tags_of(r).get("lakehouse/trigger") == "landing"]
    originals = [r for r in landing if r["parentRunId"] is None]
    # the whole day in one bronze run (each run pays the code location's start-up)
    assert len(originals) == 1, [tags_of(r) for r in originals]
    (landed,) = originals
    assert tags_of(landed)["dagster/partition"] == flow.today
    assert sorted("/".join(k["path"]) for k in landed["assetSelection"]) == sorted(
        f"bronze/retail/{s}{q}" for s in LANDED_SOURCES for q in ("", "__quarantine")
    )
    # silver and gold were started by the automation sensor, for that day only
    for key in keys:
        if key.startswith("bronze/"):
            continue
        for event in state["done"][key]:
            run = runs[event["runId"]]
            root = runs.get(run["rootRunId"] or run["runId"], run)
            assert tags_of(root).get("dagster/sensor_name") == "lakehouse_automation", (key, tags_of(root))
    earlier = ui.materialized([k for k in keys if not k.startswith("bronze/")], flow.yesterday)
    assert {k: v for k, v in earlier.items() if v} == {}


def test_a_run_worker_killed_mid_partition_is_recovered_by_run_retries(flow: Flow) -> None:
    from lakehouse.cli import run_daily
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    killed, ui = flow.killed, flow.ui
    # killed mid-partition: bronze orders was rewritten by the killed run, its quarantine was not yet
    assert killed["asset"] == "bronze/retail/orders__quarantine"
    assert killed["last_writer"]["orders"] == killed["run_id"]
    assert killed["last_writer"]["orders__quarantine"] != killed["run_id"]
    runs = {r["runId"]: r for r in ui.runs()}
    dead = runs[killed["run_id"]]
    assert dead["status"] == "FAILURE" and tags_of(dead)["dagster/will_retry"] == "true"
    (retry,) = [r for r in runs.values() if r["parentRunId"] == killed["run_id"]]
    assert tags_of(retry)["dagster/retry_number"] == "1" and retry["status"] == "SUCCESS", tags_of(retry)

    # an undisturbed run of the same day: the daily job in this process, on a copy of the landing
    reference_home = flow.settings.home.parent / "reference"
    shutil.copytree(flow.settings.landing, reference_home / "landing")
    env = {
        "LAKEHOUSE_HOME": str(reference_home),
        "DAGSTER_HOME": str(reference_home / "dagster"),
        "LAKEHOUSE_TABLE_FORMAT": flow.settings.table_format,
        "LAKEHOUSE_START_DATE": flow.yesterday,
        "RETAIL_API_URL": flow.api_url,  # the same API, so the fetched pages carry the same URLs
        "RETAIL_API_KEY": flow.api.api_key,  # the key now valid (the alert test revokes the first)
    }
    (reference_home / "dagster").mkdir(parents=True)
    (reference_home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        (record,) = run_daily([flow.today], show_progress=False)
        assert record["success"], record["errors"]
        reference = table_contents(Lake(get_settings()), layers=("bronze", "silver", "gold"))
    recovered = table_contents(Lake(flow.settings), layers=("bronze", "silver", "gold"))
    assert len(recovered) >= 20 and "bronze.retail.orders__quarantine" in recovered
    assert differences(recovered, reference) == []


@pytest.fixture(scope="module")
def failing_run(flow: Flow) -> str:
    """The product API's key is revoked; yesterday's fetch is launched and fails at once (a 401 is
    not worth retrying inside the step), as do its two run retries."""
    flow.api.api_key = secrets.token_urlsafe(16)
    return flow.ui.launch(PRODUCTS, flow.yesterday)


def test_an_unchanged_file_starts_no_run(flow: Flow, failing_run: str) -> None:
    ui = flow.ui
    before = {r["runId"] for r in ui.runs() if tags_of(r).get("dagster/partition") == flow.today}
    touched = next(Path(flow.settings.landing, "retail", "orders", flow.today).iterdir())
    later = time.time() + 60
    os.utime(touched, (later, later))  # a new mtime: the sensor's cheap fingerprint changes
    since = time.time()

    def two_ticks() -> list[dict[str, Any]] | None:
        ticks = [t for t in ui.ticks("retail_landing_sensor") if t["timestamp"] > since]
        return ticks if len(ticks) >= 2 else None

    ticks = wait_for("two landing sensor ticks after the file was touched", two_ticks, timeout=60)
    assert all(t["runIds"] == [] and t["status"] == "SKIPPED" for t in ticks), ticks
    after = {r["runId"] for r in ui.runs() if tags_of(r).get("dagster/partition") == flow.today}
    assert after == before


def test_a_failing_run_alerts_once_on_every_channel(flow: Flow, failing_run: str) -> None:
    ui, alerts = flow.ui, flow.alerts

    def chain() -> list[dict[str, Any]] | None:
        runs = [r for r in ui.runs() if (r["rootRunId"] or r["runId"]) == failing_run]
        finished = [r for r in runs if r["status"] == "FAILURE"]
        last = [r for r in finished if tags_of(r).get("dagster/will_retry") == "false"]
        return runs if len(runs) == 3 and len(finished) == 3 and last else None

    runs = wait_for("the failing fetch and its two retries to fail", chain, timeout=180, interval=2)
    (last,) = [r for r in runs if tags_of(r).get("dagster/will_retry") == "false"]
    assert tags_of(last)["dagster/retry_number"] == "2"
    wait_for("the alert of the last attempt", lambda: alerts.hooks, timeout=90)
    (hook,) = alerts.hooks
    alert = hook["alert"]
    assert (alert["kind"], alert["run_id"], alert["partition"]) == ("run_failed", last["runId"], flow.yesterday)
    assert alert["url"] == f"{ui.url}/runs/{last['runId']}"
    assert sorted(alert["assets"]) == PRODUCTS
    assert "401" in alert["summary"] and "/products" in alert["summary"], alert["summary"]
    (mail,) = alerts.mails
    assert mail["To"] == RECIPIENTS and mail["Subject"] == f"lakehouse run failed: __ASSET_JOB [{flow.yesterday}]"
    assert f"/runs/{last['runId']}" in mail.get_payload()
    (logged,) = alerts.logged()
    assert logged["run_id"] == last["runId"]
    # the run killed mid-partition was retried successfully: it alerted nobody
    assert flow.killed["run_id"] not in json.dumps([alerts.hooks, alerts.logged()])
