"""Step 4 of an erasure: prove the subject is gone — failing closed.

Every readable version of every table is read with the table reader and filtered on the
subject's identifiers (integer ids included), the change feed likewise; every file left under
the erased tables' folders is **decoded** (Parquet read column by column, JSON logs and stats
parsed) and its values compared exactly with the identifiers, and the landing files are re-read
as ingestion reads them. Anything that cannot be read or searched is a finding: a version whose
files are gone is the only read failure that counts as clean (it can leak nothing).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.exceptions import ChangeFeedUnavailableError, TableNotFoundError
from lakehouse.governance.erasure.plan import (
    RAW,
    RawMatcher,
    folded,
    mentions,
    predicate,
    subject_tables,
    text_identifiers,
    typed,
)
from lakehouse.governance.masking import keyed_hash, masking_key
from lakehouse.naming import TableRef, join_uri
from lakehouse.settings import Settings
from lakehouse.storage import filesystem, list_files, read_bytes
from lakehouse.tables import Lake, TableStore

__all__ = ["Verification", "verify_absent", "verify_certificates"]

#: the length Iceberg truncates string column bounds to (``write.metadata.metrics.default``)
_TRUNCATED = 16
#: what a read of a version whose files were purged raises: it cannot leak, so it is not a finding
_GONE = ("no such file", "object at location", "has no version", "no files in log segment")


@dataclass
class Verification:
    passed: bool
    tables_checked: int = 0
    versions_checked: int = 0
    versions_unreadable: int = 0
    change_feeds_checked: int = 0
    files_scanned: int = 0
    findings: list[str] = field(default_factory=list)


def _gone(exc: BaseException) -> bool:
    return isinstance(exc, (FileNotFoundError, TableNotFoundError)) or any(g in str(exc).lower() for g in _GONE)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _scan_versions(
    store: TableStore,
    ref: TableRef,
    columns: Mapping[str, list[object]],
    raw: RawMatcher | None,
    result: Verification,
) -> None:
    where = predicate(columns)
    try:
        versions = sorted({c.version for c in store.history(ref)}, reverse=True)
    except Exception as exc:  # fail closed: a history we cannot list is not a clean history
        result.findings.append(f"{ref}: cannot list its versions ({_error(exc)})")
        return
    for version in versions:
        try:
            if where is not None:
                n = store.read(ref, version=version, where=where).select(pl.len()).collect().item()
            elif raw is not None:
                frame = store.read(ref, version=version, columns=[RAW, "_source_file"]).collect()
                n = sum(raw.matches(r, f) for r, f in frame.iter_rows())
            else:
                return
        except Exception as exc:
            if _gone(exc):  # the files of this version were purged: it cannot be read, so it cannot leak
                result.versions_unreadable += 1
                continue
            result.findings.append(f"{ref} version {version}: cannot be read ({_error(exc)})")
            continue
        result.versions_checked += 1
        if n:
            result.findings.append(f"{ref} version {version}: {n} row(s) of the subject")
    if where is None:
        return
    try:
        changes = store.changes(ref, since=-1)
    except ChangeFeedUnavailableError:
        return  # no change feed, or the versions it would need are gone
    except Exception as exc:
        if not _gone(exc):
            result.findings.append(f"{ref} change feed: cannot be read ({_error(exc)})")
        return
    result.change_feeds_checked += 1
    present = {c: v for c, v in columns.items() if c in changes.columns}
    if present:
        from lakehouse.tables.predicates import to_polars

        change_where = predicate(present)
        assert change_where is not None
        hits = changes.filter(to_polars(change_where)).height
        if hits:
            result.findings.append(f"{ref} change feed: {hits} change row(s) of the subject")


class _Values:
    """The subject's identifiers as compared in decoded files: integers by column name (an id
    ``2`` is only the subject's in a column named like the identifier), texts anywhere, whole and
    case-folded."""

    def __init__(self, values: Mapping[str, Iterable[object]], matcher: RawMatcher) -> None:
        self.by_column = {c: {folded(v) for v in vs} for c, vs in values.items()}
        self.texts = text_identifiers(values)
        self.matcher = matcher

    def in_column(self, name: str, series: pl.Series) -> bool:
        if series.dtype == pl.String and name == RAW:
            return any(self.matcher.matches(r, None) for r in series.drop_nulls().to_list())
        wanted = set(self.by_column.get(name, set()))
        if series.dtype == pl.String:
            wanted |= self.texts
        if not wanted:
            return False
        text = series.drop_nulls().cast(pl.String, strict=False).str.strip_chars().str.to_lowercase()
        return bool(text.is_in(list(wanted)).any())

    def in_bound(self, value: object) -> bool:
        """A column bound of a manifest: a whole text identifier, or one Iceberg truncated (to 16
        characters by default: the lower bound a prefix, the upper one with its last one raised)."""
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                return False
        if not isinstance(value, str):
            return False
        text = folded(value)
        if text in self.texts:
            return True
        return len(text) >= _TRUNCATED and any(
            len(t) > len(text) and (t.startswith(text) or t.startswith(text[:-1])) for t in self.texts
        )

    def in_doc(self, doc: Any, key: str | None = None) -> bool:
        """A parsed JSON document (a log entry): stats strings are parsed, leaves compared."""
        if isinstance(doc, Mapping):
            return any(self.in_doc(v, str(k)) for k, v in doc.items())
        if isinstance(doc, list):
            return any(self.in_doc(v, key) for v in doc)
        if isinstance(doc, str):
            text = doc.strip()
            if text[:1] in "{[" and len(text) > 1:
                try:
                    return self.in_doc(json.loads(text), key)
                except ValueError:
                    pass
            return folded(doc) in self.texts or (key is not None and folded(doc) in self.by_column.get(key, set()))
        if isinstance(doc, (int, float)) and not isinstance(doc, bool):
            return key is not None and folded(doc) in self.by_column.get(key, set())
        return False


def _flat(table: pa.Table) -> pa.Table:
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


def _scan_file(settings: Settings, uri: str, values: _Values) -> list[str]:
    """The columns (or ``log``) of one file under a table's folder that hold the subject."""
    name = uri.rsplit("/", 1)[-1]
    if name.endswith(".parquet"):
        fs, path = filesystem(settings, uri)
        with fs.open_input_file(path) as handle:
            table = _flat(pq.read_table(handle))
        found = []
        for column in table.column_names:
            try:
                frame = pl.from_arrow(table.select([column]))
                assert isinstance(frame, pl.DataFrame)
                series = frame.to_series()
            except (TypeError, ValueError, pl.exceptions.PolarsError):
                series = pl.Series(column, [json.dumps(v, default=str) for v in table.column(column).to_pylist()])
            if series.dtype.is_nested():
                series = pl.Series(column, [json.dumps(v, default=str) for v in series.to_list()])
                if values.in_doc(series.to_list(), column.rsplit(".", 1)[-1]):
                    found.append(column)
                continue
            if values.in_column(column.rsplit(".", 1)[-1], series) or (
                series.dtype == pl.String and column.endswith("stats") and values.in_doc(series.to_list())
            ):
                found.append(column)
        return found
    data = read_bytes(settings, uri)
    if name.endswith((".json", ".crc")) or name == "_last_checkpoint":
        docs = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        return ["log"] if values.in_doc(docs) else []
    if name.endswith(".avro"):  # Iceberg manifests and manifest lists: column bounds among the values
        from lakehouse.tables.iceberg import avro_values  # only Iceberg tables have them: loaded then

        return ["bounds"] if any(values.in_bound(v) for v in avro_values(data)) else []
    raise ValueError(f"no reader for {name}")  # fail closed: a file we cannot decode is not clean


def verify_absent(
    settings: Settings,
    values: Mapping[str, Iterable[object]],
    *,
    lake: Lake | None = None,
    residue_tables: Iterable[TableRef] = (),
    landing_files: Iterable[str] = (),
) -> Verification:
    """No readable version, change feed, file under ``residue_tables`` or landing file holds the
    subject; anything that cannot be read fails the verification."""
    lake = lake or Lake(settings)
    result = Verification(passed=False)
    values = {c: set(vs) for c, vs in values.items()}
    matcher = RawMatcher(settings, values)
    try:
        tables = subject_tables(lake)
    except Exception as exc:
        tables = []
        result.findings.append(f"cannot list the tables ({_error(exc)})")
    for ref, _fmt, store in tables:
        try:
            schema = pl.Schema(store.schema(ref))
        except Exception as exc:
            result.findings.append(f"{ref}: cannot read its schema ({_error(exc)})")
            continue
        here = {c: typed(v, schema[c]) for c, v in values.items() if c in schema}
        here = {c: v for c, v in here.items() if v}
        raw = matcher if not here and RAW in schema and "_source_file" in schema else None
        if not here and raw is None:
            continue
        result.tables_checked += 1
        _scan_versions(store, ref, here, raw, result)
    decoded = _Values(values, matcher)
    for ref in residue_tables:
        try:
            fmt = lake.format_of(ref) or settings.table_format
            entries = list_files(settings, lake.store(fmt).location(ref))  # type: ignore[arg-type]
        except Exception as exc:
            result.findings.append(f"{ref}: cannot list its files ({_error(exc)})")
            continue
        for entry in entries:
            result.files_scanned += 1
            name = entry.uri.rsplit("/", 1)[-1]
            try:
                found = _scan_file(settings, entry.uri, decoded)
            except Exception as exc:
                result.findings.append(f"{ref}: file {name} cannot be searched ({_error(exc)})")
                continue
            if found:
                result.findings.append(f"{ref}: file {name} still holds the subject in {', '.join(found)}")
    for file in landing_files:
        try:
            data = read_bytes(settings, join_uri(settings.landing, file))
        except FileNotFoundError:
            continue  # removed
        except Exception as exc:
            result.findings.append(f"landing file {file}: cannot be read ({_error(exc)})")
            continue
        result.files_scanned += 1
        try:
            from lakehouse.ingest.readers import read_file

            read = read_file(data, source=file)
            hit = any(decoded.in_column(c, read.rows.get_column(c)) for c in read.rows.columns if c in values) or any(
                matcher.matches(r, file) for r in read.quarantine.get_column(RAW).to_list()
            )
            # whatever options the file was ingested with (no header, other column names, a records
            # path), its text must not hold a text identifier of the subject as a whole token
            hit = hit or _mentions(data, matcher.texts)
        except Exception as exc:
            result.findings.append(f"landing file {file}: cannot be searched ({_error(exc)})")
            continue
        if hit:
            result.findings.append(f"landing file {file} still holds the subject's records")
    result.passed = not result.findings
    return result


def _mentions(data: bytes, texts: set[str]) -> bool:
    """The (decompressed, decoded) text of a file holds one of ``texts`` as a whole token."""
    if not texts:
        return False
    from lakehouse.ingest.text import decompress, detect_encoding, to_utf8

    raw = decompress(data)[0]
    return mentions(to_utf8(raw, detect_encoding(raw)).decode("utf-8", errors="replace"), texts)


def verify_certificates(settings: Settings, *, lake: Lake | None = None) -> tuple[bool, dict[str, Any]]:
    """Re-prove every erasure recorded in the audit log: no readable version of any table holds a
    value whose keyed hash is one of an erased subject's identifiers (the check ``erasure_verified``).
    A version that cannot be read for another reason than its files being gone fails it."""
    from lakehouse.governance.audit import read_entries

    lake = lake or Lake(settings)
    certificates = [e for e in read_entries(settings, lake=lake) if e.action == "erasure"]
    if not certificates:
        return True, {"certificates": 0, "versions_checked": 0, "findings": []}
    key = masking_key(settings)
    hashes: dict[str, set[str]] = {}
    for cert in certificates:
        for column, values in cert.details_json.get("identifiers", {}).items():
            hashes.setdefault(column, set()).update(values)
    findings: list[str] = []
    checked = unreadable = 0
    for ref, _fmt, store in subject_tables(lake):
        columns = [c for c in store.schema(ref).names if c in hashes]
        if not columns:
            continue
        for version in sorted({c.version for c in store.history(ref)}, reverse=True):
            try:
                frame = store.read(ref, version=version, columns=columns).unique().collect()
            except Exception as exc:
                if _gone(exc):
                    unreadable += 1
                else:
                    findings.append(f"{ref} version {version}: cannot be read ({_error(exc)})")
                continue
            checked += 1
            for column in columns:
                seen = {keyed_hash(v, key) for v in frame.get_column(column).drop_nulls().to_list()}
                leaked = seen & hashes[column]
                if leaked:
                    findings.append(f"{ref} version {version}: {len(leaked)} erased {column} value(s)")
    return not findings, {
        "certificates": len(certificates),
        "versions_checked": checked,
        "versions_unreadable": unreadable,
        "findings": findings,
    }
