"""The online store: the latest feature values per entity, served in well under a millisecond.

Two backends behind one interface, chosen by ``LAKEHOUSE_ONLINE_STORE``:

``sqlite`` (default)
    a file under the state folder (``online_store.sqlite``), WAL mode, one ``WITHOUT ROWID`` table
    keyed by (view, entity key); no service needed.
``redis``
    ``LAKEHOUSE_REDIS_URL``; one string per (view, entity) under a namespace derived from the
    warehouse URI, so several lakes (and every test) can share one Redis without meeting.

Values are packed records (:mod:`lakehouse.features.codec`); the store also keeps a registry of
what it holds per view (declaration, version, ``as_of``, rows, when it was materialised), which
is how lookups, freshness reports and erasure know the views without importing ``assets/``.

:func:`materialize_online` pushes, per view, what a point-in-time join at ``as_of`` returns for
each entity (:func:`lakehouse.features.offline.latest_values`), replacing the view's previous
content: SQLite swaps it in one transaction; Redis overwrites each entity's record and then
deletes the entities that no longer have a value, so a reader always sees a whole record.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.features.codec import Layout, LayoutMismatch
from lakehouse.features.exceptions import (
    EntityDataError,
    FeatureDefinitionError,
    OnlineStoreError,
    UnknownFeatureError,
)
from lakehouse.features.spec import EVENT_TIMESTAMP, FeatureView, full_name
from lakehouse.settings import Settings, redact

if TYPE_CHECKING:
    import polars as pl

    from lakehouse.features.registry import FeatureRegistry
    from lakehouse.tables import Lake

__all__ = [
    "ONLINE_FILE",
    "OnlineFeatures",
    "OnlineStore",
    "ViewEntry",
    "clear_online_store",
    "default_as_of",
    "erase",
    "get_online_features",
    "materialize_online",
    "online_status",
    "online_store",
    "redis_namespace",
]

ONLINE_FILE = "online_store.sqlite"
#: a long-lived reader re-reads the store's registry this often (new views, new versions)
REFRESH_SECONDS = 30.0
_CHUNK = 1000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _from_us(us: int | None) -> dt.datetime | None:
    return None if us is None else _EPOCH + dt.timedelta(microseconds=us)


@dataclass(frozen=True)
class ViewEntry:
    """What the online store holds for one view."""

    view: FeatureView
    rows: int
    as_of: dt.datetime
    materialized_at: dt.datetime
    newest_event_timestamp: dt.datetime | None
    oldest_event_timestamp: dt.datetime | None

    @property
    def layout(self) -> Layout:
        return Layout(self.view)

    def to_json(self) -> str:
        return json.dumps(
            {
                "spec": self.view.to_dict(),
                "rows": self.rows,
                "as_of": _iso(self.as_of),
                "materialized_at": _iso(self.materialized_at),
                "newest_event_timestamp": _iso(self.newest_event_timestamp),
                "oldest_event_timestamp": _iso(self.oldest_event_timestamp),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ViewEntry:
        doc = json.loads(text)

        def ts(name: str) -> dt.datetime | None:
            return dt.datetime.fromisoformat(doc[name]) if doc.get(name) else None

        as_of, materialized = ts("as_of"), ts("materialized_at")
        assert as_of is not None and materialized is not None
        return cls(
            view=FeatureView.from_dict(doc["spec"]),
            rows=int(doc["rows"]),
            as_of=as_of,
            materialized_at=materialized,
            newest_event_timestamp=ts("newest_event_timestamp"),
            oldest_event_timestamp=ts("oldest_event_timestamp"),
        )

    def status(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """Freshness of this view online: how old its newest value and its materialisation are."""
        now = now or dt.datetime.now(dt.UTC)
        newest = self.newest_event_timestamp
        return {
            "view": self.view.name,
            "entity": self.view.entity.name,
            "version": self.view.version,
            "features": len(self.view.features),
            "rows": self.rows,
            "as_of": _iso(self.as_of),
            "materialized_at": _iso(self.materialized_at),
            "newest_event_timestamp": _iso(newest),
            "oldest_event_timestamp": _iso(self.oldest_event_timestamp),
            "seconds_since_materialized": round((now - self.materialized_at).total_seconds(), 1),
            "seconds_since_newest_value": round((now - newest).total_seconds(), 1) if newest else None,
            "ttl_seconds": int(self.view.ttl.total_seconds()),
        }


@dataclass
class OnlineFeatures:
    """The answer to one lookup: per requested feature (``view__feature``) a value per key, in
    the order the keys were given (None where the store has no value)."""

    entity: str
    join_key: str
    keys: list[int | str]
    values: dict[str, list[object]]
    versions: dict[str, int]
    timestamps_us: dict[str, list[int | None]] = field(repr=False)

    @property
    def event_timestamps(self) -> dict[str, list[dt.datetime | None]]:
        """Per view, the ``event_timestamp`` of each key's values (None: no value)."""
        return {view: [_from_us(us) for us in stamps] for view, stamps in self.timestamps_us.items()}

    def to_dict(self) -> dict[str, list[object]]:
        """Columns: the join key, then each feature (Feast's ``to_dict()`` shape)."""
        return {self.join_key: list(self.keys), **self.values}

    def rows(self) -> list[dict[str, object]]:
        names = list(self.values)
        return [{self.join_key: key, **{n: self.values[n][i] for n in names}} for i, key in enumerate(self.keys)]

    def to_polars(self) -> pl.DataFrame:
        import polars as pl

        return pl.DataFrame(self.to_dict())


# -- backends ----------------------------------------------------------------------------------------


class _Backend(abc.ABC):
    """Storage of records and registry entries; knows nothing of features."""

    location: str

    @abc.abstractmethod
    def exists(self) -> bool: ...

    @abc.abstractmethod
    def read_registry(self) -> dict[str, str]: ...

    @abc.abstractmethod
    def fetch(self, views: Sequence[str], keys: Sequence[str]) -> list[list[bytes | None]]:
        """Per view, the record of each key (aligned with ``keys``)."""

    @abc.abstractmethod
    def replace_view(self, view: str, records: Sequence[tuple[str, bytes]], entry: str) -> None:
        """Make ``records`` the view's whole content and store its registry entry."""

    @abc.abstractmethod
    def delete(self, view: str, keys: Sequence[str]) -> int:
        """Remove the records of ``keys``; returns how many existed."""

    @abc.abstractmethod
    def put_entry(self, view: str, entry: str) -> None:
        """Replace the registry entry of ``view``."""

    @abc.abstractmethod
    def clear(self) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional
        pass


class _Sqlite(_Backend):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._conn: sqlite3.Connection | None = None

    def exists(self) -> bool:
        return self._conn is not None or self.path.is_file()

    def _db(self, *, create: bool = False) -> sqlite3.Connection:
        if self._conn is None:
            if not create and not self.path.is_file():
                raise OnlineStoreError(
                    f"the online store {self.path} does not exist yet: run `lakehouse features materialize-online` "
                    "(or the nightly job) first"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS registry (view TEXT PRIMARY KEY, entry TEXT NOT NULL)")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS features (view TEXT NOT NULL, entity_key TEXT NOT NULL, "
                "value BLOB NOT NULL, PRIMARY KEY (view, entity_key)) WITHOUT ROWID"
            )
            self._conn = conn
        return self._conn

    def read_registry(self) -> dict[str, str]:
        return dict(self._db().execute("SELECT view, entry FROM registry").fetchall())

    def fetch(self, views: Sequence[str], keys: Sequence[str]) -> list[list[bytes | None]]:
        db = self._db()
        out = []
        for view in views:
            found: dict[str, bytes] = {}
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                sql = f"SELECT entity_key, value FROM features WHERE view = ? AND entity_key IN ({','.join('?' * len(chunk))})"
                found.update(db.execute(sql, (view, *chunk)).fetchall())
            out.append([found.get(key) for key in keys])
        return out

    def replace_view(self, view: str, records: Sequence[tuple[str, bytes]], entry: str) -> None:
        db = self._db(create=True)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM features WHERE view = ?", (view,))
            db.executemany(
                "INSERT INTO features (view, entity_key, value) VALUES (?, ?, ?)", ((view, k, v) for k, v in records)
            )
            db.execute("INSERT OR REPLACE INTO registry (view, entry) VALUES (?, ?)", (view, entry))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def delete(self, view: str, keys: Sequence[str]) -> int:
        db = self._db()
        removed = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                cursor = db.execute(
                    f"DELETE FROM features WHERE view = ? AND entity_key IN ({','.join('?' * len(chunk))})",
                    (view, *chunk),
                )
                removed += cursor.rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return removed

    def put_entry(self, view: str, entry: str) -> None:
        self._db().execute("UPDATE registry SET entry = ? WHERE view = ?", (entry, view))

    def clear(self) -> None:
        self.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _Redis(_Backend):
    def __init__(self, url: str, namespace: str) -> None:
        import redis

        self.location = f"{redact(url)} (keys {namespace}*)"
        self.ns = namespace
        # redis-py's annotations mix the sync and asyncio clients; this one is synchronous
        self._client: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._errors = redis.exceptions.RedisError

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise OnlineStoreError(f"online store Redis at {self.location}: {type(exc).__name__}: {exc}") from None

    def _record(self, view: str, key: str) -> str:
        return f"{self.ns}v:{view}:{key}"

    def _keyset(self, view: str) -> str:
        return f"{self.ns}k:{view}"

    def exists(self) -> bool:
        with self._guard():
            return bool(self._client.exists(f"{self.ns}registry"))

    def read_registry(self) -> dict[str, str]:
        with self._guard():
            raw = self._client.hgetall(f"{self.ns}registry")
        if not raw:
            raise OnlineStoreError(
                f"the online store {self.location} is empty: run `lakehouse features materialize-online` "
                "(or the nightly job) first"
            )
        return {k.decode(): v.decode() for k, v in raw.items()}

    def fetch(self, views: Sequence[str], keys: Sequence[str]) -> list[list[bytes | None]]:
        names = [self._record(view, key) for view in views for key in keys]
        with self._guard():
            values = self._client.mget(names)
        n = len(keys)
        return [values[i * n : (i + 1) * n] for i in range(len(views))]

    def replace_view(self, view: str, records: Sequence[tuple[str, bytes]], entry: str) -> None:
        keyset, fresh = self._keyset(view), f"{self._keyset(view)}:next"
        with self._guard():
            self._client.delete(fresh)
            for start in range(0, len(records), _CHUNK):
                chunk = records[start : start + _CHUNK]
                pipe = self._client.pipeline(transaction=False)
                pipe.mset({self._record(view, k): v for k, v in chunk})
                pipe.sadd(fresh, *[k for k, _ in chunk])
                pipe.execute()
            gone = self._client.sdiff(keyset, fresh) if records else self._client.smembers(keyset)
            stale = [k.decode() for k in gone]
            for start in range(0, len(stale), _CHUNK):
                self._client.unlink(*[self._record(view, k) for k in stale[start : start + _CHUNK]])
            pipe = self._client.pipeline(transaction=True)
            if records:
                pipe.rename(fresh, keyset)
            else:
                pipe.delete(keyset)
            pipe.hset(f"{self.ns}registry", view, entry)
            pipe.execute()

    def delete(self, view: str, keys: Sequence[str]) -> int:
        removed = 0
        with self._guard():
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                pipe = self._client.pipeline(transaction=True)
                pipe.unlink(*[self._record(view, k) for k in chunk])
                pipe.srem(self._keyset(view), *chunk)
                removed += int(pipe.execute()[0])
        return removed

    def put_entry(self, view: str, entry: str) -> None:
        with self._guard():
            self._client.hset(f"{self.ns}registry", view, entry)

    def clear(self) -> None:
        with self._guard():
            batch = []
            for name in self._client.scan_iter(match=f"{self.ns}*", count=1000):
                batch.append(name)
                if len(batch) >= _CHUNK:
                    self._client.unlink(*batch)
                    batch = []
            if batch:
                self._client.unlink(*batch)

    def close(self) -> None:
        self._client.close()


def redis_namespace(settings: Settings) -> str:
    """The key prefix of this lake's online store in Redis: one per warehouse."""
    digest = hashlib.sha256(settings.warehouse.encode()).hexdigest()[:12]
    return f"lakehouse:{digest}:"


# -- the store ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """How to answer one (entity, features) request: views, layouts and which values to keep."""

    views: tuple[str, ...]
    layouts: tuple[Layout, ...]
    picks: tuple[tuple[int, ...], ...]
    names: tuple[tuple[str, ...], ...]
    versions: dict[str, int]
    entity: Any


class OnlineStore:
    """The configured online store of one lake. Not thread-safe: :func:`online_store` keeps one
    per thread."""

    def __init__(self, settings: Settings) -> None:
        self.kind = settings.online_store
        self._backend: _Backend = (
            _Redis(settings.redis_url, redis_namespace(settings))
            if settings.online_store == "redis"
            else _Sqlite(settings.home / ONLINE_FILE)
        )
        self._entries: dict[str, ViewEntry] | None = None
        self._loaded_at = 0.0
        self._plans: dict[tuple[str, tuple[str, ...] | None], _Plan] = {}

    @property
    def location(self) -> str:
        """Where the store is (no credentials)."""
        return self._backend.location

    def entries(self, *, refresh: bool = False) -> dict[str, ViewEntry]:
        """The views the store holds, by name (re-read every :data:`REFRESH_SECONDS`)."""
        if refresh or self._entries is None or time.monotonic() - self._loaded_at > REFRESH_SECONDS:
            self._entries = {name: ViewEntry.from_json(text) for name, text in self._backend.read_registry().items()}
            self._loaded_at = time.monotonic()
            self._plans.clear()
        return self._entries

    def _plan(self, entity: str, features: tuple[str, ...] | None) -> _Plan:
        plan = self._plans.get((entity, features))
        if plan is not None:
            return plan
        entries = self.entries()
        views = sorted((e.view for e in entries.values() if e.view.entity.name == entity), key=lambda v: v.name)
        if not views:
            known = sorted({e.view.entity.name for e in entries.values()})
            raise UnknownFeatureError(
                f"the online store holds no feature view of entity {entity!r}; entities: {', '.join(known) or 'none'}"
            )
        by_name = {v.name: v for v in views}
        wanted: dict[str, list[str]] = {}
        for ref in features or [v.name for v in views]:
            view_name, _, feature = ref.partition(":")
            view = by_name.get(view_name.strip())
            if view is None:
                raise UnknownFeatureError(
                    f"the online store holds no view {view_name!r} of entity {entity!r}; it holds: {', '.join(by_name)}"
                )
            names = wanted.setdefault(view.name, [])
            for name in [view.feature(feature.strip()).name] if feature else view.feature_names:
                if name not in names:
                    names.append(name)
        chosen = [by_name[name] for name in wanted]
        plan = _Plan(
            views=tuple(v.name for v in chosen),
            layouts=tuple(entries[v.name].layout for v in chosen),
            picks=tuple(tuple(v.feature_names.index(n) for n in wanted[v.name]) for v in chosen),
            names=tuple(tuple(full_name(v.name, n) for n in wanted[v.name]) for v in chosen),
            versions={v.name: v.version for v in chosen},
            entity=chosen[0].entity,
        )
        self._plans[(entity, features)] = plan
        return plan

    def get(self, entity: str, keys: Sequence[object], features: Sequence[str] | None = None) -> OnlineFeatures:
        """The latest values of ``features`` (``view`` or ``view:feature``; default: every view
        of the entity) for each key.

        Raises:
            UnknownFeatureError: for an entity, view or feature the store does not hold.
            OnlineStoreError: when the store is unreachable or was never materialised.
        """
        wanted = tuple(features) if features else None
        try:
            return self._get(self._plan(entity, wanted), keys)
        except LayoutMismatch:
            self.entries(refresh=True)  # the view was redefined since the registry was read
            try:
                return self._get(self._plan(entity, wanted), keys)
            except LayoutMismatch as exc:
                raise OnlineStoreError(
                    f"online records of view {exc} do not match its registry entry; materialise it again"
                ) from None

    def _get(self, plan: _Plan, keys: Sequence[object]) -> OnlineFeatures:
        try:
            parsed = [plan.entity.parse_key(k) for k in keys]
        except FeatureDefinitionError as exc:
            raise EntityDataError(str(exc)) from None
        fetched = self._backend.fetch(plan.views, [str(k) for k in parsed])
        values: dict[str, list[object]] = {}
        stamps: dict[str, list[int | None]] = {}
        for view, layout, picks, names, records in zip(
            plan.views, plan.layouts, plan.picks, plan.names, fetched, strict=True
        ):
            stamps[view], columns = layout.decode_many(records)
            for pick, name in zip(picks, names, strict=True):
                values[name] = list(columns[pick])
        return OnlineFeatures(
            entity=plan.entity.name,
            join_key=plan.entity.join_key,
            keys=parsed,
            values=values,
            versions=dict(plan.versions),
            timestamps_us=stamps,
        )

    def write(self, view: FeatureView, rows: pl.DataFrame, *, as_of: dt.datetime) -> ViewEntry:
        """Replace the view's online content with ``rows`` (one per entity: join key,
        ``event_timestamp`` and every feature)."""
        import polars as pl

        layout = Layout(view)
        stamped = rows.select(
            pl.col(view.join_key).cast(pl.String),
            pl.col(EVENT_TIMESTAMP).dt.epoch("us"),
            *view.feature_names,
        )
        records = [(key, layout.encode(ts, values)) for key, ts, *values in stamped.iter_rows()]
        newest = rows.get_column(EVENT_TIMESTAMP).max() if rows.height else None
        oldest = rows.get_column(EVENT_TIMESTAMP).min() if rows.height else None
        entry = ViewEntry(
            view=view,
            rows=len(records),
            as_of=as_of,
            materialized_at=dt.datetime.now(dt.UTC),
            newest_event_timestamp=newest if isinstance(newest, dt.datetime) else None,
            oldest_event_timestamp=oldest if isinstance(oldest, dt.datetime) else None,
        )
        self._backend.replace_view(view.name, records, entry.to_json())
        self._entries = None
        self._plans.clear()
        return entry

    def erase(self, *, column: str, values: Sequence[object]) -> dict[str, int]:
        """Remove every record whose entity join key ``column`` is one of ``values``; returns the
        records removed per view holding that join key (an empty store: nothing)."""
        if not self._backend.exists():
            return {}
        removed: dict[str, int] = {}
        for name, entry in sorted(self.entries(refresh=True).items()):
            view = entry.view
            if view.join_key != column:
                continue
            keys = []
            for value in values:
                with contextlib.suppress(FeatureDefinitionError):  # not a valid key: nothing to remove
                    keys.append(str(view.entity.parse_key(value)))
            if not keys:
                removed[name] = 0
                continue
            count = self._backend.delete(name, keys)
            if count:
                updated = ViewEntry(**{**entry.__dict__, "rows": max(entry.rows - count, 0)})
                self._backend.put_entry(name, updated.to_json())
            removed[name] = count
        self._entries = None
        self._plans.clear()
        return removed

    def status(self) -> list[dict[str, Any]]:
        """Freshness per view (see :meth:`ViewEntry.status`)."""
        now = dt.datetime.now(dt.UTC)
        return [entry.status(now) for _, entry in sorted(self.entries(refresh=True).items())]

    def clear(self) -> None:
        """Remove everything this lake's online store holds."""
        self._backend.clear()
        self._entries = None
        self._plans.clear()

    def close(self) -> None:
        self._backend.close()


_LOCAL = threading.local()


def _store_key(settings: Settings) -> tuple[str, str]:
    if settings.online_store == "redis":
        return ("redis", settings.redis_url + "|" + redis_namespace(settings))
    return ("sqlite", str(settings.home / ONLINE_FILE))


def online_store(settings: Settings) -> OnlineStore:
    """The online store of ``settings``' lake, opened once per thread and reused."""
    stores: dict[tuple[str, str], OnlineStore] = _LOCAL.__dict__.setdefault("stores", {})
    key = _store_key(settings)
    store = stores.get(key)
    if store is None:
        store = stores[key] = OnlineStore(settings)
    return store


def get_online_features(
    settings: Settings, entity: str, keys: Sequence[object], features: Sequence[str] | None = None
) -> OnlineFeatures:
    """The online values of ``features`` for ``keys`` of ``entity`` (see :meth:`OnlineStore.get`)."""
    return online_store(settings).get(entity, keys, features)


def erase(settings: Settings, *, column: str, values: Sequence[object]) -> dict[str, int]:
    """Right to erasure: remove every online record whose entity join key ``column`` has one of
    ``values``, in the configured store; returns the records removed per feature view."""
    return online_store(settings).erase(column=column, values=values)


def online_status(settings: Settings) -> list[dict[str, Any]]:
    """Per view online: version, rows, ``as_of``, when it was materialised and how old its newest value is."""
    return online_store(settings).status()


def clear_online_store(settings: Settings) -> None:
    """Remove this lake's online store (the SQLite file, or its keys in Redis)."""
    store = online_store(settings)
    store.clear()
    _LOCAL.__dict__.get("stores", {}).pop(_store_key(settings), None)


def default_as_of(lake: Lake, views: Sequence[FeatureView]) -> dt.datetime:
    """Now, or the newest ``event_timestamp`` in the views' tables if that is earlier: values are
    served as of a moment they were all known, never as of one still in the future."""
    import polars as pl

    now = dt.datetime.now(dt.UTC)
    newest = None
    for view in views:
        value = (
            lake.existing_store(view.ref)
            .read(view.ref, columns=[EVENT_TIMESTAMP])
            .select(pl.col(EVENT_TIMESTAMP).max())
            .collect()
            .item()
        )
        if isinstance(value, dt.datetime) and (newest is None or value > newest):
            newest = value
    return min(now, newest) if newest is not None else now


def materialize_online(
    settings: Settings,
    views: Sequence[FeatureView] | FeatureRegistry | None = None,
    *,
    as_of: dt.datetime | None = None,
    lake: Lake | None = None,
) -> list[ViewEntry]:
    """Push, per view, every entity's value as of ``as_of`` (default :func:`default_as_of`) into
    the configured online store, replacing what it held. ``views`` default to the lake's."""
    from lakehouse.features.offline import latest_values
    from lakehouse.features.registry import FeatureRegistry
    from lakehouse.tables import Lake

    the_lake = lake or Lake(settings)
    chosen = list(views) if views is not None else list(FeatureRegistry.from_lake(the_lake))
    if as_of is None:
        as_of = default_as_of(the_lake, chosen)
    elif as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=dt.UTC)
    store = online_store(settings)
    return [store.write(view, latest_values(the_lake, view, as_of=as_of), as_of=as_of) for view in chosen]
