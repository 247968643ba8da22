"""The landing sensor: a new or changed landing file runs the bronze partition it belongs to, once.

* Change detection is cheap: per (source, partition) the cursor keeps one short fingerprint of
  the partition's files (path, size, mtime), so the cursor grows with partitions, not files.
* Exactly once: the ``run_key`` is derived from the files' paths and *content* hashes, computed
  only for partitions whose fingerprint changed. Touching a file without changing it, or a
  sensor restarting with a lost cursor, yields a run key that already ran: no new run (Dagster
  skips known run keys, and the sensor checks the instance too).
* A late file for an earlier day runs that earlier day's partition.
"""

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import dagster as dg

from lakehouse.ingest.readers import read_file
from lakehouse.ingest.sources import SourceSpec, all_landing_files, landing_date
from lakehouse.resource import LakeResource
from lakehouse.settings import Settings
from lakehouse.storage import FileEntry, read_bytes

__all__ = ["CURSOR_VERSION", "build_landing_sensor", "partitions_of"]

CURSOR_VERSION = 1
_RUN_KEY_TAG = "dagster/run_key"


def _short(digest: "hashlib._Hash") -> str:
    return digest.hexdigest()[:16]


def _fingerprint(settings: Settings, entries: Sequence[FileEntry]) -> str:
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.uri):
        h.update(f"{e.uri}\0{e.size}\0{e.mtime_ns}\n".encode())
    return _short(h)


def _content_key(settings: Settings, spec: SourceSpec, partition: str, entries: Sequence[FileEntry]) -> str:
    from lakehouse.ingest.factory import relative_name

    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.uri):
        h.update(relative_name(settings, e.uri).encode() + b"\0")
        h.update(hashlib.sha256(read_bytes(settings, e.uri)).digest())
    return f"{spec.name}:{partition}:{_short(h)}"


def partitions_of(settings: Settings, spec: SourceSpec, entries: Sequence[FileEntry]) -> dict[str, list[FileEntry]]:
    """Which files feed which partition: from the path, or (``date_column``) from the rows."""
    from lakehouse.ingest.factory import _row_days, relative_name

    grouped: dict[str, list[FileEntry]] = defaultdict(list)
    for entry in entries:
        if spec.date_column and "{date}" not in (spec.landing or ""):
            result = read_file(
                read_bytes(settings, entry.uri),
                source=relative_name(settings, entry.uri),
                fmt=spec.format,
                options=spec.options,
            )
            days = {d.isoformat() for d in _row_days(result, spec.date_column).drop_nulls().unique().to_list()}
            for day in days or {settings.start_date.isoformat()}:
                grouped[day].append(entry)
        else:
            key = landing_date(settings, spec, entry.uri)
            if key is not None:
                grouped[key].append(entry)
    return dict(grouped)


def _already_ran(context: dg.SensorEvaluationContext, run_key: str) -> bool:
    if context.instance is None:
        return False
    filters = dg.RunsFilter(tags={_RUN_KEY_TAG: run_key})
    return bool(context.instance.get_run_records(filters=filters, limit=1))


def build_landing_sensor(
    specs: Sequence[SourceSpec],
    *,
    name: str = "landing_sensor",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """One sensor over the landing zone for every file-based source in ``specs``."""
    file_specs = [s for s in specs if s.format != "rest"]
    keys = [dg.AssetKey(k.path) for s in file_specs for k in (s.bronze, s.quarantine)]

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        asset_selection=keys,
        description="Runs the bronze partition of every new or changed landing file, exactly once per content.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        settings = lake.settings()
        cursor: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
        if cursor.get("v") != CURSOR_VERSION:
            cursor = {"v": CURSOR_VERSION, "p": {}}
        seen: dict[str, dict[str, str]] = cursor["p"]
        requests = []
        for spec in file_specs:
            known = seen.setdefault(spec.name, {})
            for partition, entries in sorted(partitions_of(settings, spec, all_landing_files(settings, spec)).items()):
                fingerprint = _fingerprint(settings, entries)
                if known.get(partition) == fingerprint:
                    continue
                run_key = _content_key(settings, spec, partition, entries)
                known[partition] = fingerprint
                if _already_ran(context, run_key):
                    context.log.info(f"{run_key}: already processed (same content); no run")
                    continue
                requests.append(
                    dg.RunRequest(
                        run_key=run_key,
                        partition_key=partition,
                        asset_selection=[dg.AssetKey(spec.bronze.path), dg.AssetKey(spec.quarantine.path)],
                        tags={"lakehouse/source": f"{spec.domain}.{spec.name}", "lakehouse/trigger": "landing"},
                    )
                )
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, separators=(",", ":"), sort_keys=True))

    return landing_sensor
