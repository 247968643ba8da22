"""The landing sensor: a new or changed landing file runs the bronze partition it belongs to, once.

* Change detection is cheap: per (source, partition) the cursor keeps one short fingerprint of
  the partition's files (path, size, mtime), so the cursor grows with partitions, not files.
* Exactly once: each source's *content key* is derived from the files' paths and content hashes,
  computed only for partitions whose fingerprint changed. Touching a file without changing it, or a
  sensor restarting with a lost cursor, yields a content key that already ran: no new run (the
  sensor looks it up on the instance, as the run key or as the run's ``lakehouse/landed.*`` tag).
* One run per landed day: the sources that changed for a partition in one tick are loaded by one
  run (a day's files land together). Each run pays the code location's start-up, so on a small
  machine six runs per day cost far more than one, and the refresh downstream starts once, after
  the whole day is in bronze, instead of once per source.
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
_LANDED_TAG = "lakehouse/landed.{domain}.{name}"  # value: the content key the run loaded


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


def _landed_tag(spec: SourceSpec) -> str:
    return _LANDED_TAG.format(domain=spec.domain, name=spec.name)


def _already_ran(context: dg.SensorEvaluationContext, spec: SourceSpec, content_key: str) -> bool:
    if context.instance is None:
        return False
    for tags in ({_RUN_KEY_TAG: content_key}, {_landed_tag(spec): content_key}):
        if context.instance.get_run_records(filters=dg.RunsFilter(tags=tags), limit=1):
            return True
    return False


def _run_request(partition: str, changes: Sequence[tuple[SourceSpec, str]]) -> dg.RunRequest:
    """One run for the sources that changed for ``partition``; its run key is the content key of a
    single source (as before batching), or a hash of all of them."""
    content_keys = sorted(key for _, key in changes)
    if len(content_keys) == 1:
        run_key = content_keys[0]
    else:
        digest = hashlib.sha256("\n".join(content_keys).encode())
        run_key = f"{partition}:{_short(digest)}"
    tags = {
        "lakehouse/source": ",".join(f"{spec.domain}.{spec.name}" for spec, _ in changes),
        "lakehouse/trigger": "landing",
        **{_landed_tag(spec): key for spec, key in changes},
    }
    return dg.RunRequest(
        run_key=run_key,
        partition_key=partition,
        asset_selection=[dg.AssetKey(k.path) for spec, _ in changes for k in (spec.bronze, spec.quarantine)],
        tags=tags,
    )


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
        changed: dict[str, list[tuple[SourceSpec, str]]] = defaultdict(list)
        for spec in file_specs:
            known = seen.setdefault(spec.name, {})
            for partition, entries in sorted(partitions_of(settings, spec, all_landing_files(settings, spec)).items()):
                fingerprint = _fingerprint(settings, entries)
                if known.get(partition) == fingerprint:
                    continue
                content_key = _content_key(settings, spec, partition, entries)
                known[partition] = fingerprint
                if _already_ran(context, spec, content_key):
                    context.log.info(f"{content_key}: already processed (same content); no run")
                    continue
                changed[partition].append((spec, content_key))
        requests = [_run_request(partition, changes) for partition, changes in sorted(changed.items())]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, separators=(",", ":"), sort_keys=True))

    return landing_sensor
