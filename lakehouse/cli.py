"""The ``lakehouse`` command.

``lakehouse demo``     generate landing data and materialise every asset for the window
``lakehouse tables``   every table: key, format, location, version, rows
``lakehouse query``    SQL over the lake in DuckDB (tables as ``<layer>_<domain>.<table>``)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from lakehouse.exceptions import LakehouseError
from lakehouse.settings import QUERY_ROLES, TABLE_FORMATS, Settings, get_settings, scoped_environ

__all__ = ["cli", "main"]


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _dump(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=_json_default))


def _settings(fmt: str | None = None) -> Settings:
    if fmt:
        os.environ["LAKEHOUSE_TABLE_FORMAT"] = fmt  # read again by the definitions when they load
    return get_settings()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """An open-source lakehouse as a Dagster asset graph."""


# -- demo ----------------------------------------------------------------------------------------


def reset_lake(settings: Settings) -> None:
    """Delete the warehouse, landing zone and Iceberg catalog of a *local* lake."""
    if settings.warehouse_is_s3 or settings.landing.startswith("s3://"):
        raise click.UsageError("--reset only deletes a local lake; clear an S3 warehouse with your own tools")
    for folder in (settings.warehouse, settings.landing):
        shutil.rmtree(folder, ignore_errors=True)
    if settings.catalog_uri.startswith("sqlite:///"):
        Path(settings.catalog_uri[len("sqlite:///") :]).unlink(missing_ok=True)
        from lakehouse.tables.iceberg import _catalog

        _catalog.cache_clear()
    if settings.online_store == "sqlite":  # the online features of the lake being deleted
        (settings.home / "online_store.sqlite").unlink(missing_ok=True)


def _run_record(result: Any, partition: str) -> dict[str, Any]:
    """What the demo reports of one in-process run: its checks and its step errors."""
    checks = [
        {
            "check": f"{e.asset_key.to_user_string()}:{e.check_name}",
            "passed": e.passed,
            "severity": e.severity.value,
            "description": (e.description or ""),
        }
        for e in result.get_asset_check_evaluations()
    ]
    failures = [
        _error_text(ev.event_specific_data.error)
        for ev in result.all_events
        if ev.is_step_failure and ev.event_specific_data is not None
    ]
    return {
        "partition": partition,
        "run_id": result.run_id,
        "success": result.success,
        "checks": checks,
        "errors": failures,
    }


_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _run_config(verbose: bool) -> dict[str, Any]:
    return {} if verbose else _QUIET


@contextlib.contextmanager
def _job_output(verbose: bool) -> Iterator[None]:
    if verbose:
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def run_daily(
    partition_keys: Sequence[str], *, show_progress: bool = True, verbose: bool = False
) -> list[dict[str, Any]]:
    """Materialise the daily job for each partition in this process; returns one record per run."""
    import dagster as dg

    from lakehouse.definitions import DAILY_JOB, build_definitions
    from lakehouse.instance import InProcessRuns

    # built now, from the current settings (not the module-level defs of an earlier import)
    job = build_definitions().resolve_job_def(DAILY_JOB)
    runs: list[dict[str, Any]] = []
    with (
        dg.DagsterInstance.get() as instance,
        InProcessRuns(instance, "lakehouse demo", notify=_say) as launcher,
        contextlib.ExitStack() as stack,
    ):
        keys: Iterable[str] = partition_keys
        if show_progress:
            keys = stack.enter_context(
                click.progressbar(partition_keys, label="materialising", show_pos=True, file=sys.stderr)
            )
        for key in keys:
            result = launcher.execute(job, partition_key=key, raise_on_error=False, run_config=_QUIET)
            runs.append(_run_record(result, key))
    return runs


def _say(message: str) -> None:
    """What a command says while its runs go on (a dead run recovered, a table it waits for): on
    stderr, which stays visible when stdout carries JSON or is silenced."""
    click.echo(message, err=True)


def run_after_daily(partition_keys: Sequence[str], *, verbose: bool = False) -> list[dict[str, Any]]:
    """Then the nightly job (marts, training sets) over the whole range in one run, and the
    governance job (PII inventory, catalog, contracts) last; each skipped while it has no asset."""
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from lakehouse.definitions import GOVERNANCE_JOB, NIGHTLY_JOB, build_definitions
    from lakehouse.instance import InProcessRuns

    defs = build_definitions()
    runs: list[dict[str, Any]] = []
    with dg.DagsterInstance.get() as instance, InProcessRuns(instance, "lakehouse demo", notify=_say) as launcher:
        for name in (NIGHTLY_JOB, GOVERNANCE_JOB):
            job = defs.resolve_job_def(name)
            if not job.asset_layer.executable_asset_keys:
                continue
            tags = {}
            if job.partitions_def is not None:
                tags = {
                    ASSET_PARTITION_RANGE_START_TAG: partition_keys[0],
                    ASSET_PARTITION_RANGE_END_TAG: partition_keys[-1],
                }
            result = launcher.execute(job, tags=tags, raise_on_error=False, run_config=_run_config(verbose))
            runs.append(_run_record(result, f"{partition_keys[0]}..{partition_keys[-1]}" if tags else "-"))
    return runs


def _table_rows(settings: Settings) -> list[dict[str, Any]]:
    from lakehouse.tables import Lake

    return [
        {
            "table": str(info.ref),
            "sql_name": info.ref.sql_name,
            "format": info.format,
            "location": info.uri,
            "version": info.version,
            "rows": info.rows,
            "files": info.files,
            "size_bytes": info.size_bytes,
            "partition_by": list(info.partition_by),
            "last_modified": info.last_modified,
        }
        for info in Lake(settings).tables()
    ]


@contextlib.contextmanager
def simulated_services(settings: Settings) -> Iterator[None]:
    """Serve the simulator's product API on 127.0.0.1 for the sources that fetch from it.

    The URL and a fresh API key are put in the environment (``RETAIL_API_URL``,
    ``RETAIL_API_KEY``), where the REST source reads them: the key is never in code or metadata.
    """
    import secrets

    from lakehouse.simulator.api import ProductApi, serve_products
    from lakehouse.simulator.retail import load_products

    api = ProductApi(versions=load_products(settings), api_key=secrets.token_urlsafe(16))
    with serve_products(api) as url, scoped_environ({"RETAIL_API_URL": url, "RETAIL_API_KEY": api.api_key}):
        yield


def _refuse_format_switch(settings: Settings) -> None:
    from lakehouse.tables import FormatConflictError, Lake

    other = [info for info in Lake(settings).tables() if info.format != settings.table_format]
    if other:
        names = ", ".join(str(i.ref) for i in other[:3])
        raise FormatConflictError(
            f"this lake already holds {len(other)} {other[0].format} table(s) ({names}...) but the format is now "
            f"{settings.table_format}. Run `lakehouse demo --reset --format {settings.table_format}` to start a fresh "
            "local lake, or set LAKEHOUSE_HOME to another folder."
        )


def _error_text(error: Any) -> str:
    """An error and its causes as one line (Dagster wraps the asset's exception)."""
    parts = []
    while error is not None:
        parts.append(str(error.message).strip().splitlines()[-1] if error.message else "")
        error = error.cause
    return " <- ".join(p for p in parts if p)


@cli.command()
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 3660), help="Days of data to simulate.")
@click.option(
    "--format", "fmt", type=click.Choice(TABLE_FORMATS), help="Table format (default: LAKEHOUSE_TABLE_FORMAT)."
)
@click.option("--seed", default=7, show_default=True, help="Simulator seed; the same seed writes the same data.")
@click.option(
    "--scale", default=1.0, show_default=True, type=click.FloatRange(0.01, 1000), help="Multiply every volume."
)
@click.option("--reset", is_flag=True, help="Delete the local warehouse, landing zone and catalog first.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--verbose", "-v", is_flag=True, help="Show the runs' logs (Dagster, dbt) on stderr.")
def demo(days: int, fmt: str | None, seed: int, scale: float, reset: bool, as_json: bool, verbose: bool) -> None:
    """Generate landing data and materialise every asset for the window, then summarise."""
    from lakehouse.instance import prepare_dagster_home
    from lakehouse.partitions import partition_dates
    from lakehouse.simulator import SimulationConfig, generate

    settings = _settings(fmt)
    if reset:
        reset_lake(settings)
    _refuse_format_switch(settings)
    prepare_dagster_home(settings, notify=_say)
    started = time.perf_counter()
    truth = generate(settings, SimulationConfig(start=settings.start_date, days=days, seed=seed, scale=scale))
    keys = partition_dates(settings.start_date, days)
    # what runs print (dbt re-emits its log on stdout) goes to stderr with --verbose, else nowhere:
    # stdout carries the summary only; failures are in it
    with simulated_services(settings), _job_output(verbose):
        runs = run_daily(keys, show_progress=not as_json, verbose=verbose)
        if all(r["success"] for r in runs):
            runs += run_after_daily(keys, verbose=verbose)
    elapsed = time.perf_counter() - started
    tables = _table_rows(settings)
    checks = [c for r in runs for c in r["checks"]]
    failed_checks = [c for c in checks if not c["passed"] and c["severity"] == "ERROR"]
    warnings = [c for c in checks if not c["passed"] and c["severity"] != "ERROR"]
    failed_runs = [r for r in runs if not r["success"]]
    summary = {
        "format": settings.table_format,
        "warehouse": settings.warehouse,
        "partitions": [keys[0], keys[-1]],
        "runs": len(runs),
        "daily_runs": len(keys),
        "failed_runs": [
            {"partition": r["partition"], "run_id": r["run_id"], "errors": r["errors"]} for r in failed_runs
        ],
        "checks_passed": len(checks) - len(failed_checks) - len(warnings),
        "checks_failed": failed_checks,
        "checks_warned": warnings,
        "checks": [{**c, "partition": r["partition"], "run_id": r["run_id"]} for r in runs for c in r["checks"]],
        "tables": tables,
        "distinct_orders_generated": truth["orders"]["distinct_orders"],
        "seconds": round(elapsed, 2),
    }
    if as_json:
        _dump(summary)
    else:
        click.echo(
            f"\nlakehouse demo: {days} day(s) {keys[0]}..{keys[-1]}, format {settings.table_format}, {elapsed:.1f}s"
        )
        click.echo(f"warehouse {settings.warehouse}\n")
        click.echo(f"{'table':<42} {'format':<8} {'version':>7} {'rows':>9}")
        for t in tables:
            click.echo(
                f"{t['table']:<42} {t['format']:<8} {t['version'] if t['version'] is not None else '-':>7} {t['rows']:>9}"
            )
        click.echo(
            f"\nchecks: {summary['checks_passed']} passed, {len(failed_checks)} failed, {len(warnings)} warned; "
            f"runs: {len(runs) - len(failed_runs)}/{len(runs)} succeeded"
        )
        for c in warnings:
            click.echo(f"  WARN {c['check']}: {c['description']}")
        for c in failed_checks:
            click.echo(f"  FAILED {c['check']}: {c['description']}")
        for r in failed_runs:
            click.echo(f"  RUN FAILED {r['partition']} ({r['run_id']}): {'; '.join(r['errors'])[:500]}")
        click.echo(
            '\nNext: `lakehouse tables`, `lakehouse query "select * from gold_retail.daily_sales limit 5"`, `make ui`.'
        )
    if failed_checks or failed_runs:
        sys.exit(1)


# -- tables / query ------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tables(as_json: bool) -> None:
    """Every table in the lake: key, format, location, version, rows."""
    rows = _table_rows(get_settings())
    if as_json:
        _dump(rows)
        return
    if not rows:
        click.echo("no tables yet: run `lakehouse demo` (or materialise assets in the UI)")
        return
    click.echo(f"{'table':<42} {'format':<8} {'version':>7} {'rows':>9}  location")
    for t in rows:
        click.echo(
            f"{t['table']:<42} {t['format']:<8} {t['version'] if t['version'] is not None else '-':>7} {t['rows']:>9}  {t['location']}"
        )


@cli.command()
@click.argument("sql", required=False)
@click.option(
    "--file", "-f", "sql_file", type=click.Path(exists=True, dir_okay=False), help="Read the SQL from a file."
)
@click.option("--json", "as_json", is_flag=True, help="Print rows as a JSON list of objects.")
@click.option("--max-rows", default=50, show_default=True, help="Rows to print in table form.")
@click.option(
    "--engine", type=click.Choice(["duckdb", "trino"]), help="Query engine (default: LAKEHOUSE_QUERY_ENGINE)."
)
@click.option(
    "--role",
    type=click.Choice(QUERY_ROLES),
    help="Governance role (default: LAKEHOUSE_QUERY_ROLE): analyst sees personal data masked; steward in clear, audited.",
)
def query(
    sql: str | None, sql_file: str | None, as_json: bool, max_rows: int, engine: str | None, role: str | None
) -> None:
    """Run SQL over the lake with DuckDB; tables are named <layer>_<domain>.<table>."""
    import polars as pl

    from lakehouse.query.duckdb import Query

    if (sql is None) == (sql_file is None):
        raise click.UsageError("give the SQL as an argument or with --file, not both")
    if sql_file is not None:
        sql = Path(sql_file).read_text()
    assert sql is not None
    settings = get_settings()
    if (engine or settings.query_engine) == "trino":
        if role is not None:
            raise click.UsageError("--role applies to DuckDB; Trino enforces roles with its access-control rules")
        from lakehouse.query.trino import trino_query

        frame = trino_query(settings, sql)
    else:
        with Query(settings, role=role or settings.query_role) as q:
            frame = q.sql(sql)
    if as_json:
        _dump(frame.to_dicts())
        return
    with pl.Config(tbl_rows=max_rows, tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=200):
        click.echo(frame)


@cli.command()
@click.argument("path")
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "csv", "tsv", "json", "ndjson", "parquet", "avro", "log"]),
    help="File format (auto: from content and name).",
)
@click.option("--table", "table", help="Write into this bronze table, e.g. bronze.adhoc.sales (idempotent per file).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def ingest(path: str, fmt: str, table: str | None, as_json: bool) -> None:
    """Read one landing file with the project's readers; optionally write it to a bronze table.

    Exit code 0 when the file could be read (even if some rows were quarantined), 2 when it
    cannot be read at all.
    """
    import datetime as dt_

    import polars as pl

    from lakehouse.exceptions import UnreadableFileError
    from lakehouse.ingest.bronze import PARTITION_COLUMN, prepare_bronze
    from lakehouse.ingest.readers import read_file
    from lakehouse.naming import TableRef
    from lakehouse.storage import read_bytes
    from lakehouse.tables import Lake

    settings = get_settings()
    try:
        data = read_bytes(settings, path)
    except (FileNotFoundError, OSError) as exc:
        raise UnreadableFileError(f"{path}: cannot open the file ({exc})") from None
    name = Path(path).name if "://" not in path else path
    result = read_file(data, source=name, fmt=fmt)
    ref = TableRef.parse(table) if table else None
    if ref is not None and ref.layer != "bronze":
        raise click.UsageError(f"--table must be a bronze table (bronze.<domain>.<name>), got {ref}")
    lake = Lake(settings)
    store = lake.store_for(ref) if ref is not None else None
    schema = store.schema(ref) if store is not None and ref is not None and store.exists(ref) else None
    now = dt_.datetime.now(dt_.UTC)
    batch = prepare_bronze([result], table_schema=schema, ingested_at=now)
    from lakehouse.governance.masking import redact_reasons

    summary: dict[str, Any] = {
        "file": path,
        "bytes": len(data),
        "format": result.info.get("format"),
        **{
            k: result.info[k]
            for k in ("encoding", "delimiter", "header", "compression", "parser")
            if result.info.get(k) is not None
        },
        "rows_read": batch.rows_read,
        "rows_written": batch.rows_written,
        "rows_quarantined": batch.rows_quarantined,
        # reasons quote the values (personal data, maybe): shown redacted, in full in the quarantine table
        "first_reasons": redact_reasons(
            batch.quarantine.head(5).select("_source_line", "_reason").to_dicts(), settings
        ),
        "schema": batch.types,
    }
    if ref is not None and store is not None:
        today = dt_.date.today()
        rows = batch.rows.with_columns(pl.lit(today).alias(PARTITION_COLUMN))
        written = store.overwrite_partitions(
            ref,
            rows,
            partition_by="_source_file",
            values=[name],
            create_partition_by=[PARTITION_COLUMN],
            commit_metadata={"lakehouse_ingest": name},
        )
        quarantine_ref = TableRef(ref.layer, ref.domain, f"{ref.name}__quarantine")
        lake.store_for(quarantine_ref).overwrite_partitions(
            quarantine_ref,
            batch.quarantine.with_columns(pl.lit(now).alias("_ingested_at"), pl.lit(today).alias(PARTITION_COLUMN)),
            partition_by="_source_file",
            values=[name],
            create_partition_by=[PARTITION_COLUMN],
        )
        summary.update(table=str(ref), table_version=written.version, table_format=written.format)
    if as_json:
        _dump(summary)
        return
    click.echo(
        f"{path}: {summary['format']} ({', '.join(f'{k} {summary[k]!r}' for k in ('encoding', 'delimiter', 'compression') if k in summary)})"
    )
    click.echo(
        f"rows read {summary['rows_read']}, written {summary['rows_written']}, quarantined {summary['rows_quarantined']}"
    )
    for reason in summary["first_reasons"]:
        click.echo(f"  line {reason['_source_line']}: {reason['_reason']}")
    click.echo("schema: " + ", ".join(f"{k} {v}" for k, v in summary["schema"].items()))
    if ref is not None:
        click.echo(f"written to {ref} ({summary['table_format']} version {summary['table_version']})")


# -- time travel and maintenance -----------------------------------------------------------------


def _policies() -> dict[str, Any]:
    """Maintenance policy of every table, from the asset definitions' metadata."""
    from lakehouse.definitions import build_definitions
    from lakehouse.maintenance import policy_from_metadata

    graph = build_definitions().resolve_asset_graph()
    return {
        "/".join(k.path): policy_from_metadata(graph.get(k).metadata)
        for k in graph.get_all_asset_keys()
        if len(k.path) == 3
    }


def _policy(ref: Any) -> Any:
    from lakehouse.maintenance import Policy

    return _policies().get("/".join(ref.path), Policy())


def _parse_target(value: str) -> tuple[int | None, dt.datetime | None]:
    """A version number or an ISO timestamp (UTC when no offset is given)."""
    if value.strip().lstrip("-").isdigit():
        return int(value), None
    try:
        ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a version number nor an ISO timestamp") from None
    return None, ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)


def _store(name: str) -> tuple[Any, Any]:
    from lakehouse.naming import TableRef
    from lakehouse.tables import Lake

    ref = TableRef.parse(name)
    return Lake(get_settings()).existing_store(ref), ref


@cli.command()
@click.argument("table")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def history(table: str, limit: int, as_json: bool) -> None:
    """The commits of TABLE (layer.domain.table), newest first."""
    store, ref = _store(table)
    commits = store.history(ref, limit=limit)
    rows = [
        {
            "version": c.version,
            "timestamp": c.timestamp,
            "operation": c.operation,
            "run_id": c.user_metadata.get("dagster_run_id", ""),
        }
        for c in commits
    ]
    if as_json:
        _dump(rows)
        return
    click.echo(f"{ref} ({store.format})")
    for r in rows:
        click.echo(f"  {r['version']:>6}  {r['timestamp']:%Y-%m-%d %H:%M:%S}  {r['operation']:<22} {r['run_id']}")


@cli.command()
@click.argument("table")
@click.option("--as-of", "as_of", required=True, help="A version number or an ISO timestamp.")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def show(table: str, as_of: str, limit: int, as_json: bool) -> None:
    """The content of TABLE as it was at a version or a time."""
    import polars as pl

    store, ref = _store(table)
    version, when = _parse_target(as_of)
    frame = store.read(ref, version=version, as_of=when)
    total = int(frame.select(pl.len()).collect().item())
    rows = frame.head(limit).collect()
    if as_json:
        _dump({"table": str(ref), "as_of": as_of, "rows": total, "sample": rows.to_dicts()})
        return
    click.echo(f"{ref} as of {as_of}: {total} rows")
    with pl.Config(tbl_rows=limit, tbl_cols=-1, tbl_width_chars=200):
        click.echo(rows)


@cli.command()
@click.argument("table")
@click.option("--to", "target", required=True, help="A version number or an ISO timestamp.")
@click.option("--dry-run", is_flag=True, help="Say what would happen, change nothing.")
@click.option("--json", "as_json", is_flag=True)
def restore(table: str, target: str, dry_run: bool, as_json: bool) -> None:
    """Make TABLE's content at a version (or time) current again, as a new commit."""
    from lakehouse.exceptions import RetentionError

    store, ref = _store(table)
    version, when = _parse_target(target)
    policy = _policy(ref)
    cutoff = dt.datetime.now(dt.UTC) - policy.retention
    commits = store.history(ref)
    if version is not None:
        match = [c for c in commits if c.version == version]
        if not match:
            raise click.BadParameter(f"{ref} has no version {version}; see `lakehouse history {ref}`")
        target_time = match[0].timestamp
    else:
        assert when is not None
        target_time = when
    if target_time < cutoff:
        raise RetentionError(
            f"{ref}: the target ({target}, {target_time:%Y-%m-%d %H:%M:%S} UTC) is older than the retention window of "
            f"{policy.retention.days} day(s) (before {cutoff:%Y-%m-%d %H:%M:%S} UTC); its files may have been vacuumed. "
            "Pick a version inside the window (`lakehouse history`)."
        )
    current_rows = store.count(ref)
    import polars as pl

    target_rows = int(store.read(ref, version=version, as_of=when).select(pl.len()).collect().item())
    summary: dict[str, Any] = {
        "table": str(ref),
        "format": store.format,
        "current_version": store.version(ref),
        "current_rows": current_rows,
        "target": target,
        "target_rows": target_rows,
        "dry_run": dry_run,
    }
    if not dry_run:
        result = store.restore(
            ref, version=version, as_of=when if version is None else None, commit_metadata={"lakehouse_restore": target}
        )
        summary["new_version"] = result.version
        from lakehouse.governance.audit import record

        details = {k: v for k, v in summary.items() if k != "table"}
        record(get_settings(), action="restore", target=str(ref), details=details)
    if as_json:
        _dump(summary)
    elif dry_run:
        click.echo(
            f"would restore {ref} (version {summary['current_version']}, {current_rows} rows) to {target} ({target_rows} rows)"
        )
    else:
        click.echo(
            f"restored {ref} to {target}: new version {summary['new_version']} ({target_rows} rows; history kept)"
        )


@cli.command()
@click.argument("tables", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Plan only: say what each table needs.")
@click.option("--json", "as_json", is_flag=True)
def maintain(tables: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Compact, cluster, vacuum and expire partitions as each table's policy says (all tables by default)."""
    from lakehouse.maintenance import Policy
    from lakehouse.maintenance import maintain as run_maintenance
    from lakehouse.naming import TableRef
    from lakehouse.tables import Lake

    lake = Lake(get_settings())
    policies = _policies()
    refs = [TableRef.parse(t) for t in tables] if tables else [i.ref for i in lake.tables()]
    report = {
        str(ref): run_maintenance(lake, ref, policies.get("/".join(ref.path), Policy()), dry_run=dry_run)
        for ref in refs
    }
    if not dry_run:
        from lakehouse.governance.audit import NewEntry, record_many

        record_many(lake.settings, [NewEntry("maintenance", name, {"actions": done}) for name, done in report.items()])
    if as_json:
        _dump(report)
        return
    for name, records in report.items():
        click.echo(
            f"{name}: "
            + "; ".join(
                f"{r['action']}"
                + (
                    f" ({r.get('files_before')} -> {r.get('files_after')} files)"
                    if r["action"] == "compact" and "files_after" in r
                    else ""
                )
                for r in records
            )
        )


@cli.group()
def trino() -> None:
    """Helpers for querying the lake with Trino (see deploy/trino)."""


@trino.command("register")
@click.option(
    "--execute", is_flag=True, help="Run them on LAKEHOUSE_TRINO_URL instead of printing (tables already there stay)."
)
def trino_register(execute: bool) -> None:
    """Print the statements that register every Delta table in Trino's delta_lake catalog."""
    from lakehouse.query.trino import register_statements, register_tables
    from lakehouse.tables import Lake

    settings = get_settings()
    delta = [i.ref for i in Lake(settings).tables() if i.format == "delta"]
    if execute:
        done = register_tables(settings, delta)
        click.echo(f"registered {len(done)} of {len(delta)} Delta tables in delta_lake ({len(delta) - len(done)} were)")
        return
    for statement in register_statements(settings, delta):
        click.echo(statement + ";")


@trino.command("catalogs")
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the <catalog>.properties files (its old ones are replaced).",
)
def trino_catalogs_command(output: Path) -> None:
    """Write Trino's iceberg and delta_lake catalogs for this lake (deploy/local/trino.sh serves them).

    The files name the secrets as ${ENV:...} variables; the server must get them in its environment.
    """
    from lakehouse.query.trino import CATALOG_PASSWORD_ENV, write_catalogs

    catalogs = write_catalogs(get_settings(), output)
    for name in sorted(catalogs.files):
        click.echo(str(output / name))
    if "iceberg.properties" not in catalogs.files:
        click.echo(
            "no iceberg catalog: Trino reads Iceberg only through a PostgreSQL catalog (LAKEHOUSE_CATALOG_URI)",
            err=True,
        )
    # deploy/local/trino.sh passes the S3 keys on (from AWS_* too); the catalog's password it cannot
    if CATALOG_PASSWORD_ENV in catalogs.env and CATALOG_PASSWORD_ENV not in os.environ:
        click.echo(f"the server needs the catalog's password in {CATALOG_PASSWORD_ENV}", err=True)


@trino.command("server-files")
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for password.db and tls/ (a server's state folder, never the repository).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    default=("127.0.0.1", "localhost"),
    show_default=True,
    help="Names the server certificate is valid for (repeat).",
)
def trino_server_files_command(output: Path, hosts: tuple[str, ...]) -> None:
    """Write a Trino server's password file (from LAKEHOUSE_TRINO_PASSWORD and
    LAKEHOUSE_TRINO_PASSWORD_<USER>) and its TLS certificate with a private CA (kept when still
    valid). Prints the CA file clients verify with (LAKEHOUSE_TRINO_CA_FILE)."""
    from lakehouse.query.trino import trino_passwords, write_password_file, write_tls

    users = sorted(trino_passwords(os.environ))
    if not users:
        raise click.ClickException(
            "no Trino user has a password: set LAKEHOUSE_TRINO_PASSWORD (and _<USER> for others)"
        )
    write_password_file(output, os.environ)
    tls = write_tls(output / "tls", hosts)
    click.echo(f"password file for {', '.join(users)}: {output / 'password.db'}", err=True)
    click.echo(str(tls.ca_file))


@trino.command("rules")
@click.option(
    "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The rules.json to write."
)
def trino_rules_command(output: Path) -> None:
    """Write Trino's access-control rules for this lake: governance roles as groups, their column
    masks; the hashed columns read the key from the server's key table (`lakehouse trino
    load-key`), so the file holds no secret."""
    from lakehouse.governance.masking import TRINO_KEY_TABLE, trino_rule_tables, trino_rules
    from lakehouse.governance.policy import load_policy

    settings = get_settings()
    tables = trino_rule_tables(settings)
    text = json.dumps(trino_rules(load_policy(), tables, key_table=TRINO_KEY_TABLE), indent=2) + "\n"
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(output)
    click.echo(f"wrote {output}: {len(tables)} tables")


@trino.command("load-key")
def trino_load_key_command() -> None:
    """Load LAKEHOUSE_MASKING_KEY into the Trino server at LAKEHOUSE_TRINO_URL (as its service
    user), for the column masks of `lakehouse trino rules`. Run after every start of the server."""
    from lakehouse.query.trino import load_masking_key

    load_masking_key(get_settings())
    click.echo("masking key loaded")


@cli.group()
def bench() -> None:
    """Benchmarks: TPC-H through the lake, and the suite under bench/."""


@bench.command("tpch")
@click.option(
    "--sf",
    default=0.1,
    show_default=True,
    type=click.Choice(["0.01", "0.1", "1"]),
    help="Scale factor (official answers exist for these).",
)
@click.option(
    "--format", "fmt", type=click.Choice(TABLE_FORMATS), help="Table format (default: LAKEHOUSE_TABLE_FORMAT)."
)
@click.option("--repeat", default=1, show_default=True, help="Runs per query (the median is reported).")
@click.option("--json", "as_json", is_flag=True)
def bench_tpch(sf: str, fmt: str | None, repeat: int, as_json: bool) -> None:
    """Load TPC-H through the lake, run the 22 queries, compare with the official answers."""
    from lakehouse.definitions import build_definitions
    from lakehouse.tpch import run_tpch

    settings = _settings(fmt)
    home = settings.home / "bench" / f"tpch_sf{sf}_{settings.table_format}"
    report = run_tpch(
        float(sf),
        settings.table_format,
        home=home,
        definitions=build_definitions,
        repeat=repeat,
        progress=None if as_json else click.echo,
    )
    if as_json:
        _dump(
            {
                "scale_factor": report.scale_factor,
                "format": report.table_format,
                "correct": report.correct,
                "checks_failed": report.checks_failed,
                "generate_seconds": round(report.generate_seconds, 2),
                "load_seconds": round(report.load_seconds, 2),
                "rows_loaded": report.rows_loaded,
                "queries": [
                    {
                        "query": q.query,
                        "rows": q.rows,
                        "correct": q.correct,
                        "lake_ms": round(q.lake_seconds * 1000, 1),
                        "native_ms": round(q.native_seconds * 1000, 1),
                        "ratio": round(q.ratio, 2),
                        "problems": q.problems,
                    }
                    for q in report.queries
                ],
            }
        )
    else:
        total_lake = sum(q.lake_seconds for q in report.queries)
        total_native = sum(q.native_seconds for q in report.queries)
        click.echo(
            f"\nTPC-H SF {sf} over {report.table_format}: {report.correct}/22 answers correct; "
            f"queries {total_lake:.2f}s vs native DuckDB {total_native:.2f}s (ratio {total_lake / total_native:.2f})"
        )
        for q in report.queries:
            for problem in q.problems:
                click.echo(f"  Q{q.query:02d}: {problem}")
        for check in report.checks_failed:
            click.echo(f"  FAILED check {check}")
    if not report.passed:
        sys.exit(1)


@bench.command("all")
@click.argument("names", nargs=-1)
def bench_all(names: tuple[str, ...]) -> None:
    """Run the benchmark suite under bench/ (writes bench/results/)."""
    import subprocess

    from lakehouse.settings import project_root

    sys.exit(subprocess.call([sys.executable, "-m", "bench", *names], cwd=str(project_root())))


@cli.command()
@click.argument("selection")
@click.option("--from", "start", required=True, help="First partition (YYYY-MM-DD).")
@click.option("--to", "end", required=True, help="Last partition (YYYY-MM-DD), inclusive.")
@click.option("--in-process", is_flag=True, help="Run here, one run after the other, instead of on the instance.")
@click.option("--url", help="Dagster webserver to submit to (default: LAKEHOUSE_UI_URL, http://127.0.0.1:3000).")
@click.option("--dry-run", is_flag=True, help="Print the plan (assets, runs) and stop.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def backfill(
    selection: str, start: str, end: str, in_process: bool, url: str | None, dry_run: bool, as_json: bool
) -> None:
    """Backfill SELECTION (e.g. "group:silver or group:gold") for --from..--to.

    Each asset's backfill policy decides the runs: silver and gold take the whole range in one
    run, bronze a month per run. By default the backfill is submitted to the running instance
    (`make ui`) and executed by its daemon; --in-process runs it here.
    """
    from lakehouse.backfill import launch_backfill, plan_backfill, run_backfill_in_process
    from lakehouse.definitions import build_definitions

    settings = get_settings()
    defs = build_definitions()
    plan = plan_backfill(defs, selection, start, end)
    summary: dict[str, Any] = {
        "assets": [k.to_user_string() for k in plan.keys],
        "partitions": len(plan.partitions),
        "runs_planned": len(plan.runs),
        "not_partitioned": [k.to_user_string() for k in plan.skipped],
    }
    if plan.skipped and not as_json:
        click.echo(
            f"not partitioned, left out (materialise them once the backfill is done): "
            f"{', '.join(summary['not_partitioned'])}",
            err=True,
        )
    if dry_run:
        _dump(summary) if as_json else click.echo(
            f"{len(plan.keys)} assets x {len(plan.partitions)} partitions in {len(plan.runs)} run(s): "
            + ", ".join(f"{a}..{b}" for a, b in plan.runs)
        )
        return
    if not in_process:
        target = url or settings.ui_url
        backfill_id = launch_backfill(target, plan)
        summary.update({"backfill_id": backfill_id, "url": f"{target.rstrip('/')}/runs/b/{backfill_id}"})
        _dump(summary) if as_json else click.echo(f"backfill {backfill_id} submitted: {summary['url']}")
        return
    import dagster as dg

    from lakehouse.instance import prepare_dagster_home

    prepare_dagster_home(settings, notify=_say)
    with dg.DagsterInstance.get() as instance, _job_output(verbose=False):
        outcome = run_backfill_in_process(defs, plan, instance, progress=None if as_json else _say, notify=_say)
    summary.update({"runs": outcome.runs, "seconds": round(outcome.seconds, 2), "success": outcome.success})
    if as_json:
        _dump(summary)
    else:
        click.echo(f"{len(outcome.runs)} run(s) in {outcome.seconds:.1f}s: {'ok' if outcome.success else 'FAILED'}")
    if not outcome.success:
        sys.exit(1)


@cli.group("runs")
def runs_group() -> None:
    """Runs on the Dagster instance of the state folder."""


@runs_group.command("free")
@click.argument("run_id")
def runs_free(run_id: str) -> None:
    """Fail RUN_ID (unless it has ended) and free the table slots it holds.

    A command waiting for a table names this when the run holding it cannot be seen from here:
    started on another machine, or by the daemon. A run whose process on this machine is gone
    needs nothing: the next command fails it and frees its slots by itself.
    """
    import dagster as dg

    from lakehouse.instance import free_run, prepare_dagster_home

    prepare_dagster_home(get_settings(), notify=_say)
    with dg.DagsterInstance.get() as instance:
        freed = free_run(instance, run_id, by="`lakehouse runs free`")
    state = f"was {freed.status}, marked failed" if freed.failed else f"had ended ({freed.status})"
    click.echo(f"run {run_id} ({freed.process}) {state}; freed its slots: {', '.join(freed.pools) or 'none held'}")


@cli.command()
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI (bound to 127.0.0.1).")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to bind; keep 127.0.0.1 unless behind a proxy."
)
@click.option("--no-daemon", is_flag=True, help="Start only the webserver (no schedules, sensors or automation).")
def ui(port: int, host: str, no_daemon: bool) -> None:
    """Start the Dagster webserver and daemon on the embedded instance; Ctrl-C stops both."""
    from lakehouse.instance import prepare_dagster_home
    from lakehouse.processes import dagster_commands, run_until_interrupted
    from lakehouse.settings import project_root

    settings = get_settings()
    home = prepare_dagster_home(settings)
    workspace = str(project_root() / "workspace.yaml")
    commands = dagster_commands(workspace, host=host, port=port, daemon=not no_daemon)
    click.echo(f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={home}); Ctrl-C to stop.")
    sys.exit(run_until_interrupted(commands, cwd=str(project_root())))


def _add_domain_commands() -> None:
    """Commands that live with their capability (their imports stay inside the commands)."""
    from lakehouse.features.cli import COMMANDS as FEATURE_COMMANDS
    from lakehouse.governance.cli import COMMANDS as GOVERNANCE_COMMANDS

    for command in (*FEATURE_COMMANDS, *GOVERNANCE_COMMANDS):
        cli.add_command(command)


_add_domain_commands()


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: library errors become one clear line and exit code 2."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="lakehouse", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LakehouseError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
