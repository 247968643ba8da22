"""Source specs: a landing source described in YAML, validated with errors that name the file,
the source and the field.

One YAML file per domain (``assets/<domain>/sources.yaml``)::

    domain: retail
    owner: team:retail-data
    sources:
      orders:
        description: Order headers exported daily by the shop system.
        format: csv
        landing: retail/orders/{date}/*.csv     # {date} = the partition (YYYY-MM-DD)
        primary_key: [order_id]
        columns:                                 # shown in the catalog; declared types are enforced
          order_id: {type: int64, description: Order number.}
        hints: {postcode: string}                # explicit types beat inference and declarations
      events:
        format: ndjson
        landing: retail/events/*.ndjson
        date_column: event_ts                    # the partition comes from a column instead
      partners:
        format: csv
        landing: retail/partners/{date}/*.csv
        options:                                 # reader options (delimiter, header, encoding, ...)
          null_values: ["NULL", "n/a", ""]       # null in every column, quoted or not ("" = a quoted empty)
          column_null_values:                    # per column: replaces null_values for that column
            country: []                          # NA is Namibia here, not "missing"
            amount: ["-", "NULL"]

Null tokens: bronze is lossless, so without a declaration only an *empty unquoted* CSV/TSV field
is null; ``NA``, ``None``, ``NULL``, ``.`` and a quoted ``""`` are kept as the text they are. A
source whose export writes such tokens for missing values declares them (csv and tsv sources
only: JSON has its own null). Write every token as a quoted string: YAML reads bare ``NULL``,
``null`` and ``~`` as null and ``yes``/``no`` as booleans, and the loader says so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lakehouse.exceptions import SpecError
from lakehouse.naming import TableRef, join_uri
from lakehouse.settings import Settings
from lakehouse.storage import FileEntry, list_files

__all__ = [
    "FILE_FORMATS",
    "FORMATS",
    "ColumnDoc",
    "SourceSpec",
    "all_landing_files",
    "expand_env",
    "files_for_partition",
    "landing_date",
    "load_specs",
]

FILE_FORMATS = ("csv", "tsv", "json", "ndjson", "parquet", "avro", "log")
FORMATS = (*FILE_FORMATS, "rest", "postgres")
_NAME = r"^[a-z][a-z0-9_]*$"
_ENV = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


_NOT_HINTS = ("inferred", "list", "struct", "json")


class ColumnDoc(BaseModel):
    """A column of a source as the catalog shows it; a declared ``type`` is enforced in bronze."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)
    type: str | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        if value is not None and value not in _NOT_HINTS:
            from lakehouse.ingest.infer import parse_type

            parse_type(value)  # raises ValueError with the accepted names
        return value


class SourceSpec(BaseModel):
    """One landing source; becomes a daily-partitioned bronze table plus its quarantine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    domain: str = Field(pattern=_NAME)
    format: Literal["csv", "tsv", "json", "ndjson", "parquet", "avro", "log", "rest", "postgres"]
    description: str = Field(min_length=10)
    owner: str = Field(min_length=3)
    landing: str | None = None
    date_column: str | None = None
    primary_key: tuple[str, ...] = ()
    hints: dict[str, str] = Field(default_factory=dict)
    columns: dict[str, ColumnDoc] = Field(default_factory=dict)
    explode: tuple[str, ...] = ()
    options: dict[str, Any] = Field(default_factory=dict)
    table_format: Literal["delta", "iceberg"] | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("hints")
    @classmethod
    def _known_types(cls, hints: dict[str, str]) -> dict[str, str]:
        from lakehouse.ingest.infer import parse_type

        for name in hints.values():
            parse_type(name)  # raises ValueError with the accepted names
        return hints

    @model_validator(mode="after")
    def _consistent(self) -> SourceSpec:
        if self.format in ("rest", "postgres"):
            needed = "url" if self.format == "rest" else "table"
            if not self.options.get(needed):
                raise ValueError(f"a {self.format} source needs options.{needed}")
            if self.landing:
                raise ValueError(f"a {self.format} source has no landing glob (it is fetched, not landed)")
            if self.format == "postgres" and not self.primary_key:
                raise ValueError("a postgres source needs primary_key (to track deletes and updates)")
        else:
            if not self.landing:
                raise ValueError(
                    f"a {self.format} source needs a landing glob, e.g. {self.domain}/{self.name}/{{date}}/*"
                )
            if "{date}" not in self.landing and not self.date_column:
                raise ValueError("landing must contain {date}, or date_column must name the column holding the date")
            if self.landing.startswith("/") or ".." in self.landing.split("/"):
                raise ValueError("landing is relative to the landing zone and may not contain '..'")
        self._check_null_tokens()
        return self

    def _check_null_tokens(self) -> None:
        """``options.null_values`` / ``options.column_null_values`` (see the module docstring)."""
        from lakehouse.ingest.csv_reader import null_tokens

        declared = [k for k in ("null_values", "column_null_values") if k in self.options]
        if not declared:
            return
        if self.format not in ("csv", "tsv"):
            raise ValueError(
                f"options.{declared[0]} applies to csv and tsv sources only (a {self.format} source has its own nulls)"
            )
        if "null_values" in self.options:
            null_tokens(self.options["null_values"], "options.null_values")
        per_column = self.options.get("column_null_values", {})
        if not isinstance(per_column, dict):
            raise ValueError(
                "options.column_null_values: expected a mapping of column -> list of tokens, "
                f"e.g. {{country: []}}, got {per_column!r}"
            )
        for column, tokens in per_column.items():
            where = f"options.column_null_values.{column}"
            if self.columns and column not in self.columns:
                raise ValueError(f"{where}: not a column of this source (columns: {', '.join(self.columns)})")
            null_tokens(tokens, where)

    @property
    def type_hints(self) -> dict[str, str]:
        """Types bronze enforces: declared column types, overridden by explicit ``hints``."""
        declared = {n: c.type for n, c in self.columns.items() if c.type and c.type not in _NOT_HINTS}
        return {**declared, **self.hints}

    @property
    def bronze(self) -> TableRef:
        return TableRef("bronze", self.domain, self.name)

    @property
    def quarantine(self) -> TableRef:
        return TableRef("bronze", self.domain, f"{self.name}__quarantine")

    def glob_for(self, partition_key: str | None) -> str:
        """The landing glob for one partition (``{date}`` filled in), or for every partition."""
        assert self.landing is not None
        return self.landing.replace("{date}", partition_key or "*")

    def date_regex(self) -> re.Pattern[str]:
        """A regex over landing-relative paths whose group ``date`` is the partition key."""
        assert self.landing is not None
        parts = []
        for piece in re.split(r"(\{date\}|\*\*|\*|\?)", self.landing):
            parts.append(
                {"{date}": r"(?P<date>\d{4}-\d{2}-\d{2})", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
                    piece, re.escape(piece)
                )
            )
        return re.compile("^" + "".join(parts) + "$")


def expand_env(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """``${VAR}`` / ``${VAR:-default}`` in strings, from the environment (e.g. an API URL).

    Applied when a source is *read*, not when the definitions load, so the code location does
    not depend on the environment it was loaded in.
    """
    env = os.environ if env is None else env
    if isinstance(value, str):
        return _ENV.sub(lambda m: env.get(m.group(1), m.group(2) if m.group(2) is not None else m.group(0)), value)
    if isinstance(value, dict):
        return {k: expand_env(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env) for v in value]
    return value


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def load_specs(path: str | Path) -> list[SourceSpec]:
    """Read and validate one domain's YAML. Raises :class:`SpecError` naming file, source and field."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("sources"), dict):
        raise SpecError(
            f"{path}: expected a mapping with 'domain', 'owner' and 'sources' (a mapping of name -> source)"
        )
    unknown = set(document) - {"domain", "owner", "sources", "description"}
    if unknown:
        raise SpecError(f"{path}: unknown top-level key(s) {sorted(unknown)}; expected domain, owner, sources")
    specs = []
    for name, body in document["sources"].items():
        if not isinstance(body, dict):
            raise SpecError(f"{path}: sources.{name}: expected a mapping of fields")
        merged = {
            "name": name,
            "domain": document.get("domain"),
            "owner": document.get("owner"),
            **body,
        }
        try:
            specs.append(SourceSpec(**merged))
        except ValidationError as exc:
            problems = "; ".join(
                f"sources.{name}.{_where(e['loc'])}: {e['msg']}" if e["loc"] else f"sources.{name}: {e['msg']}"
                for e in exc.errors()
            )
            raise SpecError(f"{path}: {problems}") from None
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SpecError(f"{path}: duplicated source names")
    return specs


def _relative(settings: Settings, uri: str) -> str:
    root = settings.landing.rstrip("/") + "/"
    return uri[len(root) :] if uri.startswith(root) else uri


def all_landing_files(settings: Settings, spec: SourceSpec) -> list[FileEntry]:
    """Every landing file of ``spec`` (any partition), sorted by path."""
    static = spec.glob_for(None).split("*", 1)[0].rsplit("/", 1)[0]
    regex = spec.date_regex()
    return [
        f for f in list_files(settings, join_uri(settings.landing, static)) if regex.match(_relative(settings, f.uri))
    ]


def landing_date(settings: Settings, spec: SourceSpec, uri: str) -> str | None:
    """The partition key a landing file belongs to (from its path), or None."""
    match = spec.date_regex().match(_relative(settings, uri))
    return match.group("date") if match and "date" in match.groupdict() else None


def files_for_partition(settings: Settings, spec: SourceSpec, partition_key: str) -> list[FileEntry]:
    """Landing files of ``spec`` for one partition, sorted by path.

    With ``date_column``, every landing file may hold rows of the partition, so all are returned.
    """
    if spec.date_column and "{date}" not in (spec.landing or ""):
        return all_landing_files(settings, spec)
    return [f for f in all_landing_files(settings, spec) if landing_date(settings, spec, f.uri) == partition_key]
