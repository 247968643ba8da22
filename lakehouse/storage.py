"""Storage options and file-system access for the warehouse and the landing zone.

The S3 settings are turned into each library's dialect here (delta-rs/object_store, pyiceberg
FileIO, polars, pyarrow), so no other module spells an S3 option.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pyarrow.fs as pafs

from lakehouse.exceptions import StorageError
from lakehouse.settings import S3Settings, Settings

__all__ = [
    "FileEntry",
    "ensure_bucket",
    "filesystem",
    "iceberg_io_properties",
    "list_files",
    "object_store_options",
    "read_bytes",
    "split_s3_uri",
    "write_bytes",
]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``."""
    rest = uri[len("s3://") :]
    bucket, _, key = rest.partition("/")
    return bucket, key


def object_store_options(settings: Settings, uri: str) -> dict[str, str] | None:
    """Storage options for delta-rs and polars (Rust ``object_store``); None for local paths."""
    if not uri.startswith("s3://"):
        return None
    s3 = settings.s3
    options = {"AWS_REGION": s3.region}
    if s3.endpoint:
        options["AWS_ENDPOINT_URL"] = s3.endpoint
    if s3.access_key_id:
        options["AWS_ACCESS_KEY_ID"] = s3.access_key_id
    if s3.secret_access_key:
        options["AWS_SECRET_ACCESS_KEY"] = s3.secret_access_key
    if s3.allow_http:
        options["AWS_ALLOW_HTTP"] = "true"
    options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false" if s3.path_style else "true"
    return options


def iceberg_io_properties(settings: Settings) -> dict[str, str]:
    """pyiceberg FileIO properties (``s3.*``) for the catalog."""
    s3 = settings.s3
    props: dict[str, str] = {}
    if settings.warehouse_is_s3 or s3.endpoint:
        props["s3.region"] = s3.region
        if s3.endpoint:
            props["s3.endpoint"] = s3.endpoint
        if s3.access_key_id:
            props["s3.access-key-id"] = s3.access_key_id
        if s3.secret_access_key:
            props["s3.secret-access-key"] = s3.secret_access_key
        props["s3.force-virtual-addressing"] = "false" if s3.path_style else "true"
    return props


@functools.lru_cache(maxsize=8)
def _s3_filesystem(s3: S3Settings) -> pafs.S3FileSystem:
    scheme = "https"
    endpoint = None
    if s3.endpoint:
        scheme = "http" if s3.endpoint.startswith("http://") else "https"
        endpoint = s3.endpoint_host
    return pafs.S3FileSystem(
        access_key=s3.access_key_id,
        secret_key=s3.secret_access_key,
        region=s3.region,
        endpoint_override=endpoint,
        scheme=scheme,
        force_virtual_addressing=not s3.path_style,
        allow_bucket_creation=True,
    )


def filesystem(settings: Settings, uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow file system and the path inside it for a local path or ``s3://`` URI."""
    if uri.startswith("s3://"):
        return _s3_filesystem(settings.s3), uri[len("s3://") :]
    return pafs.LocalFileSystem(), uri


def ensure_bucket(settings: Settings, uri: str, *, create: bool = False) -> None:
    """Check (or create) the bucket of an ``s3://`` URI, with a clear error when it is missing.

    delta-rs reports a missing bucket only as "Generic S3 error", so callers check first.
    """
    if not uri.startswith("s3://"):
        return
    fs, path = filesystem(settings, uri)
    bucket = path.split("/", 1)[0]
    try:
        info = fs.get_file_info(bucket)
    except OSError as exc:  # pragma: no cover - network errors differ per server
        raise StorageError(f"cannot reach S3 endpoint {settings.s3.endpoint or 'AWS'} for {uri}: {exc}") from exc
    if info.type == pafs.FileType.NotFound:
        if create:
            fs.create_dir(bucket)
            return
        raise StorageError(
            f"bucket {bucket!r} of {uri} does not exist at {settings.s3.endpoint or 'AWS S3'}; "
            "create it (deploy/compose.yaml does) or point LAKEHOUSE_WAREHOUSE at an existing bucket"
        )


@dataclass(frozen=True)
class FileEntry:
    """One file found under a prefix."""

    uri: str
    size: int
    mtime_ns: int


def list_files(settings: Settings, uri: str, *, recursive: bool = True) -> list[FileEntry]:
    """Every file under ``uri`` (sorted by path); an absent folder yields an empty list."""
    fs, path = filesystem(settings, uri)
    selector = pafs.FileSelector(path, recursive=recursive, allow_not_found=True)
    prefix = "s3://" if uri.startswith("s3://") else ""
    out = []
    for info in fs.get_file_info(selector):
        if info.type == pafs.FileType.File:
            mtime = info.mtime_ns or 0
            out.append(FileEntry(uri=prefix + info.path, size=info.size or 0, mtime_ns=mtime))
    return sorted(out, key=lambda e: e.uri)


def read_bytes(settings: Settings, uri: str) -> bytes:
    """The exact bytes of a file (local or S3). No transparent decompression: readers decide."""
    fs, path = filesystem(settings, uri)
    with fs.open_input_stream(path, compression=None) as stream:
        return bytes(stream.read())


def write_bytes(settings: Settings, uri: str, data: bytes) -> None:
    """Write ``data`` exactly (no compression by file extension), creating parent folders."""
    fs, path = filesystem(settings, uri)
    if "/" in path:
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path, compression=None) as out:
        out.write(data)
