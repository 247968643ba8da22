"""A real Trino server for the tests: Trino 476 from Maven Central (deploy/local/trino.sh fetches,
verifies and prunes it once into a cache outside the repository), run on a Java 24+ JDK with a
small heap, bound to 127.0.0.1 on a free port. One per test session: it takes 20-50 s to start."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from dagster_ui import free_port

SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "local" / "trino.sh"


def install() -> Path:
    """The pruned install in the cache (fetched and verified on first use)."""
    done = subprocess.run(["bash", str(SCRIPT), "install"], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"deploy/local/trino.sh install failed: {done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def java_home() -> str | None:
    """A JDK Trino 476 accepts (24 or later), or None."""
    for candidate in [os.environ.get("TRINO_JAVA_HOME"), "/usr/lib/jvm/temurin-25-jdk-amd64"]:
        if candidate and (Path(candidate) / "bin" / "java").is_file():
            return candidate
    return None


@dataclass
class TrinoServer:
    """One ``bin/launcher run`` (the JVM is this process's child: stopping it ends Trino)."""

    port: int
    state: Path
    process: subprocess.Popen[bytes]
    started_at: float
    #: seconds from launch to the first answered query (set by :meth:`wait`)
    start_seconds: float | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.state / "run.log"

    @property
    def url(self) -> str:
        """``LAKEHOUSE_TRINO_URL`` for this server."""
        return f"http://lakehouse@127.0.0.1:{self.port}"

    def output(self, chars: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        server_log = self.state / "data" / "var" / "log" / "server.log"
        if server_log.exists():
            text += server_log.read_text(errors="replace")
        return text[-chars:]

    def wait(self, timeout: float = 240) -> TrinoServer:
        """Block until the server answers ``SELECT 1`` (its catalogs loaded); raises with the
        server's own words when it exits or does not answer in time."""
        if self.start_seconds is not None:
            return self
        deadline = time.monotonic() + timeout  # from now: the caller may have built lakes meanwhile
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Trino exited with {self.process.returncode}: {self.output()}")
            if self._answers():
                self.start_seconds = time.monotonic() - self.started_at
                return self
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"Trino did not answer within {timeout:.0f} s: {self.output()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/info", timeout=2) as r:
                if json.load(r).get("starting", True):
                    return False
            import trino

            conn = trino.dbapi.connect(host="127.0.0.1", port=self.port, user="lakehouse")  # type: ignore[no-untyped-call]
            try:
                cur = conn.cursor()
                cur.execute("SELECT count(*) FROM system.metadata.catalogs")
                return bool(cur.fetchall()[0][0])
            finally:
                conn.close()
        except Exception:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            # the launcher's own session (start_new_session): its group is this server and nothing else
            os.killpg(self.process.pid, signal.SIGTERM)  # Trino shuts down cleanly on SIGTERM
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.state, ignore_errors=True)


def start(catalog_dir: Path, env: dict[str, str], *, heap: str = "1G") -> TrinoServer:
    """Launch Trino serving the catalog files in ``catalog_dir`` and return at once (call
    :meth:`TrinoServer.wait`): the caller can build its lakes while the JVM starts. ``env`` holds
    what the catalogs' ``${ENV:...}`` references need (secrets reach Trino only this way)."""
    state = Path(tempfile.mkdtemp(prefix="trino-"))
    port = free_port()
    full_env = {
        **os.environ,
        **env,
        "TRINO_PORT": str(port),
        "TRINO_STATE": str(state),
        "TRINO_CATALOG_DIR": str(catalog_dir),
        "TRINO_HEAP": heap,
    }
    log = open(state / "run.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        ["bash", str(SCRIPT), "run"], env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return TrinoServer(port=port, state=state, process=process, started_at=time.monotonic())
