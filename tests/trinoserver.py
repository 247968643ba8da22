"""A real Trino server for the tests: Trino 476 from Maven Central (deploy/local/trino.sh fetches,
verifies and prunes it once into a cache outside the repository), run on a Java 24+ JDK with a
small heap, bound to 127.0.0.1 on free ports. One per test session: it takes 20-50 s to start.

Like `make trino`, it authenticates: clients log in with a password over HTTPS (a certificate
from a private CA made at start, ``ca_file``), the HTTP port carries only the server's own signed
requests, and the file-based access control (governance roles as groups) is loaded. Passwords and
the internal secret are made per session and reach the server only through its environment."""

from __future__ import annotations

import json
import os
import secrets
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


#: users with a password on the test server besides the service user ``lakehouse`` (groups.txt
#: puts them in the governance roles of the same name)
USERS = ("analyst", "steward")
SERVICE_USER = "lakehouse"


@dataclass
class TrinoServer:
    """One ``bin/launcher run`` (the JVM is this process's child: stopping it ends Trino)."""

    #: the HTTP port: internal communication and /v1/info only (clients are refused there)
    port: int
    state: Path
    process: subprocess.Popen[bytes]
    started_at: float
    #: the clients' HTTPS port
    https_port: int = 0
    #: password by user (``lakehouse``, ``analyst``, ``steward``)
    passwords: dict[str, str] = field(default_factory=dict, repr=False)
    shared_secret: str = field(default="", repr=False)
    #: seconds from launch to the first answered query (set by :meth:`wait`)
    start_seconds: float | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.state / "run.log"

    @property
    def url(self) -> str:
        """``LAKEHOUSE_TRINO_URL`` for this server (the service user)."""
        return self.url_for(SERVICE_USER)

    def url_for(self, user: str) -> str:
        return f"https://{user}@127.0.0.1:{self.https_port}"

    @property
    def ca_file(self) -> Path:
        """The PEM CA the server's certificate is signed by (``LAKEHOUSE_TRINO_CA_FILE``)."""
        return self.state / "etc" / "tls" / "ca.pem"

    def client_env(self, user: str = SERVICE_USER) -> dict[str, str]:
        """``LAKEHOUSE_TRINO_URL``, ``LAKEHOUSE_TRINO_PASSWORD`` and ``LAKEHOUSE_TRINO_CA_FILE`` of ``user``."""
        return {
            "LAKEHOUSE_TRINO_URL": self.url_for(user),
            "LAKEHOUSE_TRINO_PASSWORD": self.passwords[user],
            "LAKEHOUSE_TRINO_CA_FILE": str(self.ca_file),
        }

    def connect(self, user: str = SERVICE_USER, password: str | None = None, **kwargs: object) -> object:
        """A DB-API connection as ``user`` over HTTPS (its own password unless one is given)."""
        import trino

        from lakehouse.query.trino import http_session

        return trino.dbapi.connect(  # type: ignore[no-untyped-call]
            host="127.0.0.1",
            port=self.https_port,
            user=user,
            http_scheme="https",
            auth=trino.auth.BasicAuthentication(user, self.passwords[user] if password is None else password),
            http_session=http_session(str(self.ca_file)),
            **kwargs,
        )

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
            conn = self.connect()
            try:
                cur = conn.cursor()  # type: ignore[attr-defined]
                cur.execute("SELECT count(*) FROM system.metadata.catalogs")
                return bool(cur.fetchall()[0][0])
            finally:
                conn.close()  # type: ignore[attr-defined]
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


def start(catalog_dir: Path, env: dict[str, str], *, heap: str = "1G", rules_file: Path | None = None) -> TrinoServer:
    """Launch Trino serving the catalog files in ``catalog_dir`` and return at once (call
    :meth:`TrinoServer.wait`): the caller can build its lakes while the JVM starts. ``env`` holds
    what the catalogs' ``${ENV:...}`` references need (secrets reach Trino only this way).
    ``rules_file`` is the access-control rules file, read in place and re-read every second (the
    caller rewrites it once the lake's tables exist)."""
    state = Path(tempfile.mkdtemp(prefix="trino-"))
    port = free_port()
    https_port = free_port()
    while https_port == port:
        https_port = free_port()
    passwords = {user: secrets.token_urlsafe(18) for user in (SERVICE_USER, *USERS)}
    shared_secret = secrets.token_urlsafe(32)
    # the developer's own Trino passwords must not add users to the test server
    # (and the session loads its own masking key: trino_fixtures.TrinoSession.write_rules)
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LAKEHOUSE_TRINO_PASSWORD") and k != "LAKEHOUSE_MASKING_KEY"
    }
    full_env = {
        **inherited,
        **env,
        "TRINO_PORT": str(port),
        "TRINO_HTTPS_PORT": str(https_port),
        "TRINO_STATE": str(state),
        "TRINO_CATALOG_DIR": str(catalog_dir),
        "TRINO_HEAP": heap,
        "LAKEHOUSE_TRINO_PASSWORD": passwords[SERVICE_USER],
        **{f"LAKEHOUSE_TRINO_PASSWORD_{user.upper()}": passwords[user] for user in USERS},
        "LAKEHOUSE_TRINO_SHARED_SECRET": shared_secret,
    }
    if rules_file is not None:
        full_env["TRINO_RULES_FILE"] = str(rules_file)
        full_env["TRINO_RULES_REFRESH"] = "1s"
    log = open(state / "run.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        ["bash", str(SCRIPT), "run"], env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return TrinoServer(
        port=port,
        state=state,
        process=process,
        started_at=time.monotonic(),
        https_port=https_port,
        passwords=passwords,
        shared_secret=shared_secret,
    )
