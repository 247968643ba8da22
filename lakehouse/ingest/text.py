"""Bytes -> text helpers shared by the text readers: compression, encodings, physical lines.

Encodings are detected, never assumed: a BOM decides (UTF-8, UTF-16 LE/BE); otherwise UTF-16
without a BOM is recognised by its NUL pattern, then strict UTF-8 is tried, then CP1252 (when
any byte in 0x80-0x9F is present: curly quotes, euro sign) or Latin-1. The detected encoding
is reported with every read.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

__all__ = ["EncodingInfo", "Lines", "decompress", "detect_encoding", "is_utf8", "split_lines", "to_utf8"]

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def decompress(data: bytes) -> tuple[bytes, str | None]:
    """Undo gzip (by magic bytes, not by file name). Returns ``(data, "gzip" | None)``.

    A truncated gzip stream yields what could be decompressed (the rest is reported by the
    reader as a truncated last line), rather than failing the whole file.
    """
    if data[:2] != b"\x1f\x8b":
        return data, None
    try:
        return gzip.decompress(data), "gzip"
    except (EOFError, OSError, zlib.error):
        out = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            return out.decompress(data), "gzip (truncated)"
        except zlib.error:
            return b"", "gzip (corrupt)"


@dataclass(frozen=True)
class EncodingInfo:
    encoding: str  # as reported to users: utf-8, utf-8-sig, utf-16-le, utf-16-be, cp1252, latin-1
    bom: int  # bytes of BOM to skip


def _looks_utf16(sample: bytes) -> str | None:
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    zeros_even, zeros_odd = even.count(0) / len(even), odd.count(0) / len(odd)
    if zeros_odd > 0.3 and zeros_even < 0.05:
        return "utf-16-le"
    if zeros_even > 0.3 and zeros_odd < 0.05:
        return "utf-16-be"
    return None


def is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8 (Arrow's SIMD validator over the bytes, no copy: ten
    times faster than ``bytes.decode`` on a large file, with the same verdicts)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def detect_encoding(data: bytes) -> EncodingInfo:
    """The encoding of ``data`` (see the module docstring for the order of the rules)."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return EncodingInfo(name, len(bom))
    utf16 = _looks_utf16(data[:4096])
    if utf16:
        return EncodingInfo(utf16, 0)
    if is_utf8(data):
        return EncodingInfo("utf-8", 0)
    try:
        data.decode("cp1252")
        if any(0x80 <= b <= 0x9F for b in data):
            return EncodingInfo("cp1252", 0)
    except UnicodeDecodeError:
        pass
    return EncodingInfo("latin-1", 0)


def to_utf8(data: bytes, info: EncodingInfo) -> bytes:
    """``data`` re-encoded as UTF-8 without BOM (no copy when it already is UTF-8)."""
    if info.encoding == "utf-8":
        return data
    if info.encoding == "utf-8-sig":
        return data[info.bom :]
    codec = {"utf-16-le": "utf-16-le", "utf-16-be": "utf-16-be"}.get(info.encoding, info.encoding)
    return data[info.bom :].decode(codec, errors="replace").encode("utf-8")


@dataclass(frozen=True)
class Lines:
    """The physical lines of a buffer as a zero-copy Arrow string array.

    Each element still ends with its ``\n`` (or ``\r\n``), except possibly the last one;
    ``lengths`` is each line's length without the line break.
    """

    text: pa.LargeStringArray
    lengths: np.ndarray

    @property
    def numbers(self) -> np.ndarray:
        """1-based physical line number of each element."""
        return np.arange(1, len(self.lengths) + 1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.lengths)


def split_lines(data: bytes) -> Lines:
    """Split on ``\n`` without copying; the empty remainder after a final newline is not a line."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    offsets = np.concatenate(([0], newlines + 1)).astype(np.int64)
    if offsets[-1] != len(buf):
        offsets = np.concatenate((offsets, [len(buf)]))
    raw_lengths = np.diff(offsets)
    ends = offsets[1:]
    has_nl = np.zeros(len(raw_lengths), dtype=bool)
    has_cr = np.zeros(len(raw_lengths), dtype=bool)
    if len(raw_lengths):
        has_nl = (raw_lengths > 0) & (buf[np.maximum(ends - 1, 0)] == 10)
        before = ends - 1 - has_nl
        has_cr = (raw_lengths - has_nl > 0) & (buf[np.maximum(before, 0)] == 13)
    lengths = raw_lengths - has_nl - has_cr
    array = pa.LargeStringArray.from_buffers(len(raw_lengths), pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))
    return Lines(text=array, lengths=lengths)
