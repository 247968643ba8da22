"""``lakehouse features ...``: online lookups and training sets from the shell.

``features list``                 the feature views in the lake (declaration, version, rows)
``features get ENTITY KEY...``    online values, e.g. ``lakehouse features get customer 42 --json``
``features materialize-online``   push the latest values of every view into the online store
``features status``               freshness of the online store, per view
``features historical FILE``      a point-in-time training set for the entity rows in FILE

Heavy imports (polars, the table layer) stay inside the commands, so ``lakehouse --help`` and
``features get`` start fast.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

__all__ = ["COMMANDS"]


def _dump(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))


def _settings() -> Any:
    from lakehouse.settings import get_settings

    return get_settings()


def _features(values: tuple[str, ...]) -> list[str] | None:
    refs = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return refs or None


@click.group("features")
def features() -> None:
    """Feature store: online lookups, materialisation and point-in-time training sets."""


@features.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_views(as_json: bool) -> None:
    """The feature views whose tables exist in the lake."""
    from lakehouse.features.registry import FeatureRegistry
    from lakehouse.tables import Lake

    lake = Lake(_settings())
    rows: list[dict[str, Any]] = []
    for view in sorted(FeatureRegistry.from_lake(lake), key=lambda v: v.name):
        store = lake.existing_store(view.ref)
        rows.append(
            {
                "view": view.name,
                "entity": view.entity.name,
                "join_key": view.join_key,
                "version": view.version,
                "ttl_seconds": int(view.ttl.total_seconds()),
                "features": view.feature_names,
                "owner": view.owner,
                "table": view.ref.sql_name,
                "table_version": store.version(view.ref),
                "rows": store.info(view.ref).rows,
            }
        )
    if as_json:
        _dump(rows)
        return
    if not rows:
        click.echo("no feature views in this lake yet: run `lakehouse demo`")
        return
    click.echo(f"{'view':<28} {'entity':<10} {'version':>7} {'ttl':>8} {'features':>8} {'rows':>9}")
    for r in rows:
        ttl = dt.timedelta(seconds=r["ttl_seconds"])
        click.echo(
            f"{r['view']:<28} {r['entity']:<10} {r['version']:>7} {ttl.days:>7}d {len(r['features']):>8} {r['rows']:>9}"
        )


@features.command("get")
@click.argument("entity")
@click.argument("keys", nargs=-1, required=True)
@click.option(
    "--feature", "-f", "wanted", multiple=True, help="view or view:feature (repeat or comma-separate); default: all."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def get(entity: str, keys: tuple[str, ...], wanted: tuple[str, ...], as_json: bool) -> None:
    """Online feature values of ENTITY (e.g. customer) for KEYS, with their freshness."""
    from lakehouse.features.online import online_store

    store = online_store(_settings())
    answer = store.get(entity, list(keys), _features(wanted))
    entries = store.entries()
    stamps = answer.event_timestamps
    views: dict[str, dict[str, Any]] = {
        view: {
            "version": answer.versions[view],
            "as_of": entries[view].as_of,
            "materialized_at": entries[view].materialized_at,
            "event_timestamps": stamps[view],
        }
        for view in answer.versions
    }
    if as_json:
        _dump(
            {
                "entity": answer.entity,
                "join_key": answer.join_key,
                "online_store": store.kind,
                "rows": answer.rows(),
                "views": views,
            }
        )
        return
    for i, key in enumerate(answer.keys):
        click.echo(f"{answer.entity} {answer.join_key}={key}  (online store: {store.kind})")
        for view, facts in views.items():
            stamp = facts["event_timestamps"][i]
            state = f"values as of {stamp:%Y-%m-%d %H:%M} UTC" if stamp else "no value (unknown, or older than TTL)"
            click.echo(f"  {view} v{facts['version']}: {state}")
            prefix = f"{view}__"
            for name, values in answer.values.items():
                if name.startswith(prefix):
                    click.echo(f"    {name[len(prefix) :]:<28} {values[i]}")


def _parse_as_of(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO timestamp (e.g. 2024-01-06T00:00:00Z)") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)


@features.command("materialize-online")
@click.option("--as-of", "as_of", help="ISO timestamp; default: now, or the newest feature timestamp if earlier.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def materialize(as_of: str | None, as_json: bool) -> None:
    """Push every feature view's latest values (within TTL at --as-of) into the online store."""
    from lakehouse.features.online import materialize_online, online_store

    settings = _settings()
    entries = materialize_online(settings, as_of=_parse_as_of(as_of))
    status = [e.status() for e in entries]
    if as_json:
        _dump({"online_store": online_store(settings).location, "views": status})
        return
    click.echo(f"online store {online_store(settings).location}")
    for s in status:
        click.echo(f"  {s['view']:<28} v{s['version']}  {s['rows']:>7} entities as of {s['as_of']}")


@features.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Freshness of the online store: per view, when it was materialised and how old its values are."""
    from lakehouse.features.online import online_store

    settings = _settings()
    store = online_store(settings)
    rows = store.status()
    if as_json:
        _dump({"online_store": store.location, "views": rows})
        return
    click.echo(f"online store {store.location}")
    click.echo(f"{'view':<28} {'version':>7} {'rows':>8}  {'as of':<25} {'newest value age':>17}")
    for r in rows:
        age = r["seconds_since_newest_value"]
        shown = f"{age / 3600:.1f} h" if age is not None else "-"
        click.echo(f"{r['view']:<28} {r['version']:>7} {r['rows']:>8}  {r['as_of']:<25} {shown:>17}")


@features.command("historical")
@click.argument("entity_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--feature", "-f", "wanted", multiple=True, required=True, help="view or view:feature (repeatable).")
@click.option(
    "--timestamp-column", default="event_timestamp", show_default=True, help="Column holding each row's time."
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write .parquet or .csv here.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def historical(
    entity_file: Path, wanted: tuple[str, ...], timestamp_column: str, output: Path | None, as_json: bool
) -> None:
    """A point-in-time training set: ENTITY_FILE (.csv or .parquet: join keys and a timestamp per
    row) with each feature's value as of that row's timestamp."""
    import polars as pl

    from lakehouse.features.offline import get_historical_features
    from lakehouse.tables import Lake

    if entity_file.suffix == ".parquet":
        entities = pl.read_parquet(entity_file)
    else:
        entities = pl.read_csv(entity_file, try_parse_dates=True)
    frame = get_historical_features(
        Lake(_settings()), entities, _features(wanted) or [], timestamp_column=timestamp_column
    )
    if output is not None:
        if output.suffix == ".csv":
            frame.write_csv(output)
        else:
            frame.write_parquet(output)
    if as_json:
        _dump(frame.to_dicts())
    elif output is not None:
        click.echo(f"{frame.height} rows x {frame.width} columns written to {output}")
    else:
        with pl.Config(tbl_rows=20, tbl_cols=-1, tbl_width_chars=200):
            click.echo(frame)


#: click commands added to the ``lakehouse`` group by ``lakehouse.cli``
COMMANDS: list[click.Command] = [features]
