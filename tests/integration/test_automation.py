"""Declarative automation, backfill and freshness policies, freshness checks and failure alerts,
evaluated in process against a real lake (the daemon end to end is tests/e2e/test_daemon.py)."""

import datetime as dt
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import polars as pl
import pytest

from lakehouse.automation import AUTOMATION_SENSOR, EAGER_PARTITION, FRESHNESS_CHECK
from lakehouse.naming import TableRef
from lakehouse.partitions import partition_dates
from lakehouse.simulator import SimulationConfig, generate


def definitions():
    from lakehouse.definitions import build_definitions

    return build_definitions()


def test_every_downstream_asset_has_a_named_condition_and_the_sensors_run_by_default(lake_env):
    defs = definitions()
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        layer, domain = key.path[0], key.path[1]
        condition = node.automation_condition
        if domain == "tpch":
            assert condition is None, key
        if layer == "bronze":
            assert condition is None, f"{key}: bronze is driven by the landing sensor"
            assert node.backfill_policy == dg.BackfillPolicy.multi_run(max_partitions_per_run=31)
        else:
            assert domain == "tpch" or condition.get_label(), f"{key} has no named automation condition"
            assert node.backfill_policy == dg.BackfillPolicy.single_run(), key
        if layer == "gold" and domain != "tpch":
            assert node.freshness_policy is not None, key
    assert (
        graph.get(dg.AssetKey(["silver", "retail", "orders"])).automation_condition.get_label()
        == EAGER_PARTITION.get_label()
    )
    sensors = {s.name: s for s in defs.sensors}
    for name in (AUTOMATION_SENSOR, "retail_landing_sensor", "run_failure_alerts", "blocking_check_alerts"):
        assert sensors[name].default_status == dg.DefaultSensorStatus.RUNNING, name
    assert all(s.default_status == dg.DefaultScheduleStatus.RUNNING for s in defs.schedules)
    assert {s.name for s in defs.schedules} == {"nightly_maintenance_schedule", "daily_freshness_schedule"}


def test_a_landed_day_flows_through_silver_and_gold_for_that_partition_only(lake_env):
    from lakehouse.cli import simulated_services
    from lakehouse.settings import get_settings

    settings = get_settings()
    days = list(partition_dates(settings.start_date, 3))
    generate(settings, SimulationConfig(start=settings.start_date, days=3, seed=5))
    defs = definitions()
    instance = dg.DagsterInstance.ephemeral()
    now = dt.datetime(2024, 1, 10, 12, tzinfo=dt.UTC)
    bronze = dg.define_asset_job(
        "bronze_only", selection=dg.AssetSelection.groups("bronze") - dg.AssetSelection.tag("domain", "tpch")
    )
    bronze_job = dg.Definitions.merge(defs, dg.Definitions(jobs=[bronze])).resolve_job_def("bronze_only")
    with simulated_services(settings):
        for day in days[:2]:
            assert bronze_job.execute_in_process(partition_key=day, instance=instance).success
        # first tick: what exists now is the baseline
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=now)
        silver_orders = dg.AssetKey(["silver", "retail", "orders"])
        assert first.get_requested_partitions(silver_orders) == set()
        # a new day lands: bronze for that day only, then silver for that day only
        assert bronze_job.execute_in_process(partition_key=days[2], instance=instance).success
        second = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=first.cursor, evaluation_time=now
        )
    requested = {
        k.to_user_string(): second.get_requested_partitions(k)
        for k in (r.key for r in second.results)
        if second.get_num_requested(k)
    }
    # the whole chain for that day is requested in one tick (downstream of what will run counts as
    # updated), and nothing for the days that did not change
    downstream = {k: v for k, v in requested.items() if k != "gold/retail/dim_date" and "/features/" not in k}
    assert {k for k in downstream if k.startswith("silver/")} >= {"silver/retail/orders", "silver/retail/events"}
    assert {"gold/retail/fct_sales", "gold/retail/dim_customer", "gold/retail/web_traffic_daily"} <= set(downstream)
    assert all(v == {days[2]} for v in downstream.values()), requested
    assert not any(k.startswith("bronze/") for k in requested)
    # feature views aggregate trailing windows: the new day changes its own row and every later day's
    # (up to today), never an earlier one
    features = {k: v for k, v in requested.items() if k.startswith("gold/features/")}
    assert set(features) == {
        f"gold/features/{v}"
        for v in (
            "customer_rfm",
            "customer_basket",
            "customer_web_activity",
            "product_popularity",
            "store_daily_traffic",
        )
    }
    first_day, today = dt.date.fromisoformat(days[2]), now.date()
    later = {(first_day + dt.timedelta(days=i)).isoformat() for i in range((today - first_day).days + 1)}
    assert all(v == later for v in features.values()), features
    # nothing changed since: the next tick requests nothing new
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor, evaluation_time=now)
    assert third.total_requested == 0


def test_freshness_check_fails_for_a_stale_table_and_passes_for_a_fresh_one(lake_env):
    from lakehouse.automation import _freshness_outcome
    from lakehouse.settings import get_settings
    from lakehouse.tables import Lake

    lake = Lake(get_settings())
    ref = TableRef("gold", "test", "daily")
    store = lake.store()
    now = dt.datetime.now(dt.UTC)
    yesterday = (now - dt.timedelta(days=1)).date()
    store.overwrite_partitions(
        ref,
        pl.DataFrame({"day": [yesterday - dt.timedelta(days=3)], "v": [1]}),
        partition_by="day",
        values=[yesterday - dt.timedelta(days=3)],
    )
    stale = _freshness_outcome(lake, ref, "day", now, dt.timedelta(hours=26))
    assert not stale.passed and f"is older than {yesterday}" in stale.description
    store.overwrite_partitions(
        ref, pl.DataFrame({"day": [yesterday], "v": [2]}), partition_by="day", values=[yesterday]
    )
    fresh = _freshness_outcome(lake, ref, "day", now, dt.timedelta(hours=26))
    assert fresh.passed, fresh.description
    later = _freshness_outcome(lake, ref, "day", now + dt.timedelta(hours=30), dt.timedelta(hours=26))
    assert not later.passed and "last updated 30.0 h ago" in later.description


def test_freshness_checks_are_not_part_of_the_daily_refresh(lake_env):
    defs = definitions()
    freshness = {k for k in defs.resolve_asset_graph().asset_check_keys if k.name == FRESHNESS_CHECK}
    assert dg.AssetCheckKey(dg.AssetKey(["gold", "retail", "fct_sales"]), FRESHNESS_CHECK) in freshness
    daily = defs.resolve_job_def("daily_refresh")
    fresh_job = defs.resolve_job_def("freshness_checks")
    assert not freshness & set(daily.asset_layer.asset_graph.asset_check_keys)
    assert freshness <= set(fresh_job.asset_layer.asset_graph.asset_check_keys)


# -- alerts ----------------------------------------------------------------------------------------


class Webhook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        Webhook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def alert_servers(lake_env, monkeypatch):
    """A webhook receiver and an SMTP server on 127.0.0.1, configured as alert channels."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    mails = []

    class Inbox(Message):
        def handle_message(self, message):
            mails.append(message)

    with socket.socket() as probe:  # aiosmtpd connects to itself to confirm it is up: no port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(Inbox(), hostname="127.0.0.1", port=port)
    smtp.start()
    Webhook.received = []
    web = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    monkeypatch.setenv(
        "LAKEHOUSE_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{web.server_address[1]}/hooks/T000/B000/s3cr3t"
    )
    monkeypatch.setenv("LAKEHOUSE_ALERT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("LAKEHOUSE_ALERT_SMTP_PORT", str(port))
    monkeypatch.setenv("LAKEHOUSE_ALERT_EMAIL_TO", "oncall@example.com, data@example.com")
    monkeypatch.setenv("LAKEHOUSE_UI_URL", "http://127.0.0.1:3999")
    yield {"mails": mails, "hooks": Webhook.received, "log": lake_env / "alerts.log"}
    web.shutdown()
    smtp.stop()


def run_sensor(defs, name, instance, run):
    from resources import build_resources

    sensor = next(s for s in defs.sensors if s.name == name)
    failure = next(
        e
        for e in instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
    )
    context = dg.build_run_status_sensor_context(
        sensor_name=name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=failure.dagster_event,
        resources={"alerts": build_resources()["alerts"]},
    ).for_run_failure()
    return sensor(context)


def test_a_failed_run_alerts_once_on_every_channel(alert_servers, lake_env):
    @dg.asset(partitions_def=dg.DailyPartitionsDefinition("2024-01-01"), key=["silver", "ops", "broken"])
    def broken():
        raise ValueError("column amount: cannot parse 'abc' as decimal (orders_2024-01-02.csv, line 17)")

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([broken], instance=instance, partition_key="2024-01-02", raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    defs = definitions()
    assert isinstance(run_sensor(defs, "blocking_check_alerts", instance, run), dg.SkipReason)
    assert run_sensor(defs, "run_failure_alerts", instance, run) is None

    (hook,) = alert_servers["hooks"]
    assert hook["alert"]["kind"] == "run_failed" and hook["alert"]["partition"] == "2024-01-02"
    assert hook["alert"]["assets"] == ["silver/ops/broken"]
    assert hook["alert"]["url"] == f"http://127.0.0.1:3999/runs/{run.run_id}"
    assert "cannot parse 'abc' as decimal" in hook["text"] and hook["blocks"][0]["type"] == "header"
    (mail,) = alert_servers["mails"]
    assert mail["To"] == "oncall@example.com, data@example.com"
    assert mail["Subject"] == "lakehouse run failed: __ephemeral_asset_job__ [2024-01-02]"
    assert f"/runs/{run.run_id}" in mail.get_payload() and "line 17" in mail.get_payload()
    (logged,) = [json.loads(line) for line in alert_servers["log"].read_text().splitlines()]
    assert logged["run_id"] == run.run_id and logged["kind"] == "run_failed"


def test_a_blocking_check_failure_alerts_through_its_own_sensor(alert_servers, lake_env):
    @dg.asset(
        key=["silver", "ops", "orders"],
        check_specs=[dg.AssetCheckSpec("not_empty", asset=["silver", "ops", "orders"], blocking=True)],
    )
    def orders():
        yield dg.Output(1)
        yield dg.AssetCheckResult(passed=False, description="0 rows")

    @dg.asset(key=["gold", "ops", "summary"], deps=[orders])
    def summary():
        return 2

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([orders, summary], instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    defs = definitions()
    assert isinstance(run_sensor(defs, "run_failure_alerts", instance, run), dg.SkipReason)
    assert run_sensor(defs, "blocking_check_alerts", instance, run) is None
    (hook,) = alert_servers["hooks"]
    assert hook["alert"]["kind"] == "blocking_check_failed"
    assert hook["alert"]["failed_checks"] == ["silver/ops/orders:not_empty"]
    assert len(alert_servers["mails"]) == 1 and "blocking check failed" in alert_servers["mails"][0]["Subject"]


def test_a_broken_channel_does_not_silence_the_others(lake_env, monkeypatch):
    from lakehouse.alerts import Alert
    from resources import build_resources

    monkeypatch.setenv("LAKEHOUSE_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/unreachable")
    with dg.build_resources({"alerts": build_resources()["alerts"]}) as resources:
        outcome = resources.alerts.send(Alert(kind="run_failed", job="j", run_id="r1", url="u", summary="boom"))
    assert outcome["log"] == "sent" and outcome["webhook"].startswith(("URLError", "ConnectionRefusedError"))
    assert json.loads((lake_env / "alerts.log").read_text())["run_id"] == "r1"
