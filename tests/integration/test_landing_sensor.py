"""The landing sensor: each new or changed file runs its bronze partition exactly once."""

import json
import os
import time

import dagster as dg

from lakehouse.ingest.factory import build_source
from lakehouse.ingest.sensor import build_landing_sensor
from lakehouse.ingest.sources import SourceSpec
from lakehouse.resource import LakeResource

SPEC = SourceSpec(
    name="orders",
    domain="shop",
    format="csv",
    landing="shop/orders/{date}/*.csv",
    description="Orders landed by the shop, one folder per day.",
    owner="team:shop",
)


def evaluate(sensor, settings, instance, cursor):
    context = dg.build_sensor_context(
        cursor=cursor, instance=instance, resources={"lake": LakeResource.from_settings(settings)}
    )
    result = sensor(context)
    return [(r.partition_key, r.run_key) for r in result.run_requests], result.cursor


def land(settings, day, name, text):
    path = settings.home / "landing" / "shop" / "orders" / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def launch(settings, instance, partition, run_key):
    """Run the requested partition the way the daemon would (the run carries the run key)."""
    from resources import build_resources

    asset, checks = build_source(SPEC)
    result = dg.materialize(
        [asset, *checks],
        partition_key=partition,
        instance=instance,
        resources=build_resources(settings),
        tags={"dagster/run_key": run_key},
    )
    assert result.success


def test_new_same_changed_and_late_files(lake_env, settings):
    instance = dg.DagsterInstance.ephemeral()
    sensor = build_landing_sensor([SPEC], name="shop_landing")
    assert evaluate(sensor, settings, instance, None)[0] == []  # nothing landed yet

    land(settings, "2024-01-05", "a.csv", "id,amount\n1,10.00\n2,5.50\n")
    requests, cursor = evaluate(sensor, settings, instance, None)
    assert [p for p, _ in requests] == ["2024-01-05"]
    first_key = requests[0][1]
    assert first_key.startswith("orders:2024-01-05:")
    launch(settings, instance, "2024-01-05", first_key)

    # same file, sensor ticks again: nothing
    requests, cursor = evaluate(sensor, settings, instance, cursor)
    assert requests == []

    # touched, content unchanged: the fingerprint moves but the content key already ran
    path = settings.home / "landing" / "shop" / "orders" / "2024-01-05" / "a.csv"
    os.utime(path, (time.time() + 60, time.time() + 60))
    requests, cursor = evaluate(sensor, settings, instance, cursor)
    assert requests == []

    # changed content: one run, with a new key
    path.write_text("id,amount\n1,10.00\n2,5.50\n3,1.00\n")
    requests, cursor = evaluate(sensor, settings, instance, cursor)
    assert len(requests) == 1 and requests[0][0] == "2024-01-05" and requests[0][1] != first_key
    launch(settings, instance, *requests[0])

    # a late file for an earlier day runs that day only
    land(settings, "2024-01-02", "late.csv", "id,amount\n9,1.00\n")
    requests, cursor = evaluate(sensor, settings, instance, cursor)
    assert [p for p, _ in requests] == ["2024-01-02"]
    launch(settings, instance, *requests[0])

    # the sensor restarts without its cursor: every partition's content already ran, no run
    requests, _ = evaluate(sensor, settings, instance, None)
    assert requests == []

    # the cursor holds one short entry per partition, not one per file
    state = json.loads(cursor)
    assert state["v"] == 1 and set(state["p"]["orders"]) == {"2024-01-02", "2024-01-05"}
    assert all(len(v) == 16 for v in state["p"]["orders"].values())


def test_sensor_is_running_by_default_and_targets_every_file_source(lake_env):
    from lakehouse.definitions import build_definitions

    defs = build_definitions()
    sensor = defs.resolve_sensor_def("retail_landing_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    keys = {k.to_user_string() for k in sensor.asset_selection.resolve(defs.resolve_asset_graph())}
    files = {"stores", "customers", "orders", "order_lines", "web_logs", "events"}
    assert keys == {f"bronze/retail/{n}" for n in files} | {f"bronze/retail/{n}__quarantine" for n in files}
