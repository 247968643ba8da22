"""Governance commands: ``lakehouse pii``, ``audit``, ``erase``, ``contracts``, ``catalog``, ``lineage``,
``masking``. Heavy imports stay inside the commands so ``lakehouse --help`` stays fast."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

__all__ = ["COMMANDS"]


def _dump(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _settings() -> Any:
    from lakehouse.settings import get_settings

    return get_settings()


def _definitions() -> Any:
    from lakehouse.definitions import build_definitions

    return build_definitions()


# -- pii --------------------------------------------------------------------------------------------


@click.group()
def pii() -> None:
    """Find personal data in tables and landing files."""


def _looks_like_file(target: str) -> bool:
    return "://" in target or Path(target).exists() or Path(target).suffix.lower() in (
        ".csv", ".tsv", ".json", ".ndjson", ".jsonl", ".parquet", ".avro", ".log", ".gz",
    )  # fmt: skip


@pii.command("scan")
@click.argument("target")
@click.option(
    "--min-confidence", type=click.FloatRange(0, 1), help="Report threshold (default: LAKEHOUSE_PII_MIN_CONFIDENCE)."
)
@click.option("--rows", default=2000, show_default=True, help="Rows sampled.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pii_scan(target: str, min_confidence: float | None, rows: int, as_json: bool) -> None:
    """Classify every column of TARGET: a table (layer.domain.table) or a landing file.

    Each column gets its most likely PII class and the confidence; classes below the threshold
    are shown as "-"."""
    from lakehouse.governance.classifier import classify_column

    settings = _settings()
    threshold = settings.pii_min_confidence if min_confidence is None else min_confidence
    if _looks_like_file(target):
        from lakehouse.exceptions import UnreadableFileError
        from lakehouse.ingest.readers import read_file
        from lakehouse.storage import read_bytes

        try:
            data = read_bytes(settings, target)
        except OSError as exc:
            raise UnreadableFileError(f"{target}: cannot open the file ({exc})") from None
        frame = read_file(data, source=Path(target).name if "://" not in target else target).rows.head(rows)
        kind = "file"
    else:
        from lakehouse.naming import TableRef
        from lakehouse.tables import Lake

        ref = TableRef.parse(target)
        frame = Lake(settings).existing_store(ref).read(ref).head(rows).collect()
        kind = "table"
    results = []
    for column in frame.columns:
        if column in ("_source_file", "_source_line"):
            continue
        series = frame.get_column(column)
        values = series.drop_nulls().unique(maintain_order=True).head(500).to_list()
        best = classify_column(column, values, dtype=series.dtype)
        flagged = best is not None and best.confidence >= threshold
        results.append(
            {
                "column": column,
                "type": str(series.dtype),
                "pii_class": best.pii_class if flagged and best else None,
                "confidence": best.confidence if best else 0.0,
                "best_guess": best.pii_class if best else None,
                "sample_size": best.sample_size if best else len(values),
                "evidence": best.evidence if best else None,
            }
        )
    if as_json:
        _dump({kind: target, "rows_sampled": frame.height, "min_confidence": threshold, "columns": results})
        return
    click.echo(f"{target} ({kind}, {frame.height} rows sampled, threshold {threshold:g})")
    click.echo(f"  {'column':<28} {'class':<16} {'confidence':>10}  evidence")
    for r in results:
        shown = r["pii_class"] or "-"
        click.echo(f"  {r['column']:<28} {shown:<16} {r['confidence']:>10.2f}  {r['evidence'] or ''}")


# -- audit ------------------------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """The tamper-evident audit log (governance/audit/audit_log)."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit_verify(as_json: bool) -> None:
    """Recompute the hash chain; exit 1 when an entry was edited, removed or the table rewritten."""
    from lakehouse.governance.audit import verify

    report = verify(_settings())
    if as_json:
        _dump(
            {
                "intact": report.intact,
                "entries": report.entries,
                "head_seq": report.head_seq,
                "head_hash": report.head_hash,
                "problems": [p.__dict__ for p in report.problems],
            }
        )
    elif report.intact:
        click.echo(f"audit log intact: {report.entries} entries, head {report.head_seq} {report.head_hash or '-'}")
    else:
        click.echo(f"audit log TAMPERED: {len(report.problems)} problem(s) in {report.entries} entries")
        for p in report.problems:
            click.echo(f"  {p.kind}: {p.message}")
    if not report.intact:
        sys.exit(1)


@audit.command("show")
@click.option("--limit", default=20, show_default=True, help="Newest entries to show.")
@click.option("--action", help="Only this action (erasure, restore, privileged_query, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit_show(limit: int, action: str | None, as_json: bool) -> None:
    """The newest audit entries."""
    from lakehouse.governance.audit import read_entries

    entries = [e for e in read_entries(_settings()) if action is None or e.action == action][-limit:]
    if as_json:
        _dump([{**e.__dict__, "details": e.details_json} for e in entries])
        return
    for e in entries:
        click.echo(f"{e.seq:>6}  {e.recorded_at:%Y-%m-%d %H:%M:%S}  {e.action:<18} {e.target:<40} {e.actor}")


# -- erase ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout, also by libraries writing to the file descriptor, to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@click.command()
@click.option("--subject", required=True, help="COLUMN=VALUE identifying the data subject, e.g. customer_id=123.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; change nothing.")
@click.option("--reason", help="Why (e.g. the request's ticket); recorded in the certificate.")
@click.option("--no-recompute", is_flag=True, help="Do not recompute derived aggregates (their checks may then fail).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def erase(subject: str, dry_run: bool, reason: str | None, no_recompute: bool, as_json: bool) -> None:
    """Erase a data subject from every table, landing file, old version and the online store,
    verify it, and record an erasure certificate in the audit log. Exit 1 if verification fails.

    It waits for the runs writing the subject's tables (it holds their pools while it deletes and
    verifies); an erasure that was interrupted is finished by running the same command again."""
    from lakehouse.governance.erasure import erase as run_erasure
    from lakehouse.governance.erasure import parse_subject
    from lakehouse.instance import prepare_dagster_home

    settings = _settings()
    column, value = parse_subject(subject)
    import dagster as dg

    # always the instance the writers run on: the erasure holds their tables' pools while it deletes
    prepare_dagster_home(settings)
    instance = dg.DagsterInstance.get()
    # what the recompute runs print (dbt logs on stdout) goes to stderr: stdout carries the summary only
    with _stdout_to_stderr():
        # the erasure package never imports the code location: the CLI passes it in (to recompute)
        defs = None if no_recompute else _definitions()
        result = run_erasure(
            settings,
            column=column,
            value=value,
            dry_run=dry_run,
            reason=reason,
            recompute=not no_recompute,
            defs=defs,
            instance=instance,
        )
    summary = result.summary()
    if as_json:
        _dump(summary)
    else:
        verb = "would remove" if dry_run else "removed"
        resumed = " (resumed an interrupted erasure)" if result.resumed else ""
        click.echo(f"{subject}: {verb} {result.plan.rows} row(s) in {len(result.plan.tables)} table(s){resumed}")
        for t in summary["tables"]:
            rows = t.get("rows_removed", t.get("rows"))
            versions = (
                f" (v{t['version_before']} -> v{t['version_after']}, history {t['history']})"
                if "version_after" in t
                else ""
            )
            click.echo(f"  {t['table']:<44} {rows:>6}{versions}")
        for f in summary["landing"]:
            click.echo(f"  landing {f['file']}: {f.get('records_removed', f.get('records'))} record(s)")
        for r in summary["recompute"]:
            click.echo(f"  recompute {r['asset']} {', '.join(r['partitions']) or '(all)'}")
        if not dry_run:
            v = summary["verification"]
            click.echo(
                f"verification {'passed' if v['passed'] else 'FAILED'}: {v['versions_checked']} readable version(s) of "
                f"{v['tables_checked']} table(s), {v['versions_unreadable']} unreadable, {v['files_scanned']} file(s) scanned"
            )
            for finding in v["findings"]:
                click.echo(f"  {finding}")
            click.echo(f"certificate: audit entry {summary['audit_seq']} ({summary['seconds']}s)")
    if not result.passed:
        sys.exit(1)


# -- contracts --------------------------------------------------------------------------------------


@click.group()
def contracts() -> None:
    """Data contracts (assets/<domain>/contracts/*.yaml)."""


@contracts.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def contracts_verify(as_json: bool) -> None:
    """Evaluate every contract against the lake; list violations. Exit 1 on any error."""
    from lakehouse.governance.contracts import evaluate, load_contracts
    from lakehouse.tables import Lake

    lake = Lake(_settings())
    report: list[dict[str, Any]] = []
    for contract in load_contracts():
        violations, rows = evaluate(contract, lake)
        report.append(
            {
                "contract": contract.name,
                "version": contract.version,
                "table": str(contract.ref),
                "file": contract.path,
                "rows_checked": rows,
                "violations": [v.as_dict() for v in violations],
            }
        )
    errors = sum(1 for r in report for v in r["violations"] if v["severity"] == "error")
    if as_json:
        _dump({"contracts": report, "errors": errors})
    else:
        for r in report:
            state = "ok" if not r["violations"] else f"{len(r['violations'])} violation(s)"
            click.echo(f"{r['contract']} v{r['version']} ({r['table']}, {r['rows_checked']} rows): {state}")
            for v in r["violations"]:
                click.echo(f"  {v['severity'].upper()} {v['kind']}: {v['message']}")
    if errors:
        sys.exit(1)


# -- catalog and lineage ----------------------------------------------------------------------------


def _catalog() -> list[Any]:
    from lakehouse.governance.catalog import build_catalog
    from lakehouse.governance.contracts import load_contracts
    from lakehouse.governance.inventory import read_inventory
    from lakehouse.tables import Lake

    settings = _settings()
    lake = Lake(settings)
    found, _ = read_inventory(lake)
    import dagster as dg

    from lakehouse.instance import prepare_dagster_home

    graph = _definitions().resolve_asset_graph()
    prepare_dagster_home(settings)
    with contextlib.ExitStack() as stack:
        try:
            instance: dg.DagsterInstance | None = stack.enter_context(dg.DagsterInstance.get())
        except Exception:
            instance = None  # lineage reported only at run time (dbt) is then left out
        return build_catalog(graph, pii=found, contracts=load_contracts(), lake_tables=lake.tables(), instance=instance)


@click.group()
def catalog() -> None:
    """The data catalog: tables, columns, owners, tags, PII."""


@catalog.command("search")
@click.argument("term")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def catalog_search(term: str, as_json: bool) -> None:
    """Tables and columns whose name, description, owner, tag or PII class contains TERM."""
    from lakehouse.governance.catalog import search

    hits = search(_catalog(), term)
    if as_json:
        _dump(hits)
        return
    if not hits:
        click.echo(f"nothing matches {term!r}")
        return
    for h in hits:
        name = h["table"] + (f".{h['column']}" if h["kind"] == "column" else "")
        pii_class = f" [pii: {h['pii_class']}]" if h.get("pii_class") else ""
        click.echo(f"{h['kind']:<7} {name:<52} ({', '.join(h['matched'])}){pii_class}  {h.get('description') or ''}")


@click.command()
@click.argument("column")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def lineage(column: str, as_json: bool) -> None:
    """Column-level lineage of TABLE.COLUMN (e.g. gold.retail.fct_sales.net_amount): upstream and downstream."""
    from lakehouse.governance.catalog import column_lineage, parse_column

    try:
        table, name = parse_column(column)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    entries = _catalog()
    entry = next((e for e in entries if e.table == table), None)
    if entry is None:
        raise click.BadParameter(f"no asset {table} in the code location")
    if entry.column(name) is None:
        raise click.BadParameter(
            f"{table} has no documented column {name!r}; columns: {', '.join(c.name for c in entry.columns)}"
        )
    steps = column_lineage(entries, table, name)
    if as_json:
        _dump({"column": f"{table}.{name}", "lineage": [s.__dict__ for s in steps]})
        return
    click.echo(f"{table}.{name}")
    for direction, arrow in (("upstream", "<-"), ("downstream", "->")):
        chosen = [s for s in steps if s.direction == direction]
        click.echo(f"  {direction}: {'none' if not chosen else ''}")
        for s in chosen:
            click.echo(f"    {'  ' * (s.depth - 1)}{arrow} {s.table}.{s.column}")


# -- masking ----------------------------------------------------------------------------------------


@click.group()
def masking() -> None:
    """Masking rules for engines other than DuckDB."""


@masking.command("trino-rules")
@click.option("--output", type=click.Path(dir_okay=False), help="Write here (default: print).")
def masking_trino_rules(output: str | None) -> None:
    """Trino file-based access control (rules.json): a rule per role and table, column masks for
    roles without clear access, from the policy, the PII inventory and the contracts. The hashed
    columns read the key from the server's key table (`lakehouse trino load-key`): the file holds
    no secret, and a masked role's EXPLAIN cannot show the key (as `lakehouse trino rules`)."""
    from lakehouse.governance.masking import TRINO_KEY_TABLE, trino_rule_tables, trino_rules
    from lakehouse.governance.policy import load_policy

    tables = trino_rule_tables(_settings())
    text = json.dumps(trino_rules(load_policy(), tables, key_table=TRINO_KEY_TABLE), indent=2) + "\n"
    if output:
        Path(output).write_text(text)
        click.echo(f"wrote {output}: {len(tables)} tables, roles {', '.join(sorted(load_policy().roles))}")
    else:
        click.echo(text, nl=False)


#: click commands added to the ``lakehouse`` group by ``lakehouse.cli``
COMMANDS: list[click.Command] = [pii, audit, erase, contracts, catalog, lineage, masking]
