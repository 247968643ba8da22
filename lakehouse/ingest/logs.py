"""Web server access logs: Apache/Nginx common and combined formats, with an optional leading
virtual host (``vhost:port``), IPv6 clients, ``-`` for missing bytes, extra trailing fields
(e.g. a response time), gzip and rotated files. A line that does not parse (a truncated line
without its closing quote, say) is quarantined with its line number, never dropped.

Parsing is one vectorised regular expression over all lines (polars/Rust regex).
"""

from __future__ import annotations

import polars as pl

from lakehouse.ingest.result import ReadResult, quarantine_frame
from lakehouse.ingest.text import decompress, detect_encoding, split_lines, to_utf8

__all__ = ["LOG_COLUMNS", "LOG_PATTERN", "read_access_log"]

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
LOG_PATTERN = (
    r"^(?:(?P<vhost>[^\s\[]+)\s+)??"  # optional virtual host (vhost_combined); lazy so the IP wins
    r"(?P<client_ip>[^\s\[]+)\s+(?P<ident>\S+)\s+(?P<auth_user>\S+)\s+"
    r"\[(?P<time>[^\]]+)\]\s+"
    r'"(?P<request>(?:[^"\\]|\\.)*)"\s+'
    r"(?P<status>[0-9]{3})\s+(?P<bytes>[0-9]+|-)"
    r'(?:\s+"(?P<referrer>(?:[^"\\]|\\.)*)"\s+"(?P<user_agent>(?:[^"\\]|\\.)*)")?'
    r'(?:\s+[^\s"]+)*\s*$'  # extra unquoted fields (response time...); a cut-off quote never matches
)

#: Output columns and what they mean (the bronze column schema of a log source).
LOG_COLUMNS = {
    "vhost": "Virtual host (and port) when the log format carries it.",
    "client_ip": "Client address, IPv4 or IPv6.",
    "ident": "RFC 1413 identity, almost always '-'.",
    "auth_user": "Authenticated user, '-' when anonymous.",
    "request_ts": "Request time converted to UTC.",
    "method": "HTTP method of the request line.",
    "path": "Requested path (with query string).",
    "protocol": "Protocol of the request line, e.g. HTTP/1.1.",
    "request": "The request line as logged.",
    "status": "HTTP status code.",
    "bytes": "Response size in bytes; null when logged as '-'.",
    "referrer": "Referer header ('-' when absent); null in common-format lines.",
    "user_agent": "User-Agent header; null in common-format lines.",
}


def read_access_log(data: bytes, *, source: str) -> ReadResult:
    """Parse an access log (gzip-compressed or not) into typed columns."""
    data, compression = decompress(data)
    enc = detect_encoding(data)
    lines = split_lines(to_utf8(data, enc))
    text = pl.from_arrow(lines.text)
    assert isinstance(text, pl.Series)
    frame = pl.DataFrame(
        {"_line": text.str.strip_chars_end("\r\n"), "_source_line": pl.Series(lines.numbers, dtype=pl.Int64)}
    ).filter(pl.Series(lines.lengths > 0))
    parsed = frame.with_columns(pl.col("_line").str.extract_groups(LOG_PATTERN).alias("_m")).unnest("_m")
    parsed = parsed.with_columns(
        pl.col("time")
        .str.to_datetime("%d/%b/%Y:%H:%M:%S %z", strict=False)
        .dt.convert_time_zone("UTC")
        .dt.cast_time_unit("us")
        .alias("request_ts"),
    )
    matched = pl.col("client_ip").is_not_null()
    reason = (
        pl.when(~matched)
        .then(pl.lit("not a common/combined access log line (truncated or malformed)"))
        .when(pl.col("request_ts").is_null())
        .then(pl.format("unreadable timestamp [{}]", pl.col("time")))
        .otherwise(None)
    )
    parsed = parsed.with_columns(reason.alias("_reason"))
    bad = parsed.filter(pl.col("_reason").is_not_null())
    good = parsed.filter(pl.col("_reason").is_null())
    request_parts = pl.col("request").str.extract_groups(r"^(?P<method>[A-Z]+) (?P<path>\S+)(?: (?P<protocol>\S+))?$")
    rows = (
        good.with_columns(request_parts.alias("_r"))
        .unnest("_r")
        .select(
            pl.col("vhost"),
            pl.col("client_ip"),
            pl.col("ident"),
            pl.col("auth_user"),
            pl.col("request_ts"),
            pl.col("method"),
            pl.col("path"),
            pl.col("protocol"),
            pl.col("request"),
            pl.col("status").cast(pl.Int64),
            pl.when(pl.col("bytes") == "-").then(None).otherwise(pl.col("bytes")).cast(pl.Int64).alias("bytes"),
            pl.col("referrer"),
            pl.col("user_agent"),
            pl.lit(source, dtype=pl.String).alias("_source_file"),
            pl.col("_source_line"),
        )
    )
    quarantine = quarantine_frame(
        (source, n, raw, why) for n, raw, why in bad.select("_source_line", "_line", "_reason").iter_rows()
    )
    return ReadResult(
        rows=rows,
        quarantine=quarantine,
        info={"encoding": enc.encoding, "compression": compression, "parser": "access-log"},
    )
