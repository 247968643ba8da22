"""What every reader returns: typed rows plus quarantined rows with reasons, so counts reconcile."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

__all__ = ["QUARANTINE_SCHEMA", "ReadResult", "quarantine_frame"]

#: Columns of every quarantine table (plus the partition column added by the bronze asset).
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "_source_file": pl.String(),
    "_source_line": pl.Int64(),
    "_raw": pl.String(),
    "_reason": pl.String(),
}


def quarantine_frame(records: Iterable[tuple[str, int | None, str, str]]) -> pl.DataFrame:
    """A quarantine frame from ``(file, line, raw, reason)`` tuples."""
    rows = list(records)
    return pl.DataFrame(
        {
            "_source_file": [r[0] for r in rows],
            "_source_line": [r[1] for r in rows],
            "_raw": [r[2] for r in rows],
            "_reason": [r[3] for r in rows],
        },
        schema=QUARANTINE_SCHEMA,
    )


@dataclass
class ReadResult:
    """Rows read from one or more files. ``rows_read == rows.height + quarantine.height`` always."""

    rows: pl.DataFrame
    quarantine: pl.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        return self.rows.height + self.quarantine.height

    @staticmethod
    def concat(results: Iterable[ReadResult], info: Mapping[str, Any] | None = None) -> ReadResult:
        items = list(results)
        if not items:
            return ReadResult(rows=pl.DataFrame(), quarantine=quarantine_frame([]), info=dict(info or {}))
        frames = [r.rows for r in items if r.rows.width]
        rows = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
        quarantine = pl.concat([r.quarantine for r in items], how="vertical")
        return ReadResult(rows=rows, quarantine=quarantine, info=dict(info or {}))
