"""A throw-away PostgreSQL server for the tests: `initdb` into a temp dir, `pg_ctl start`, stop.

The server listens on 127.0.0.1 and on a Unix socket inside its own temp dir, trusts every local
connection (`initdb -A trust`), and runs with `fsync=off`: nothing here survives the session, so
nothing needs to be durable. As root, the PostgreSQL tools refuse to run, so they run as the
`postgres` user through `runuser` and the temp dir is handed to that user.

Finding the binaries (`find_bindir`) and running the server live here; skipping or failing when
they are absent (REQUIRE_TOOLS=1) is the fixtures' job (`tests/pg_fixtures.py`).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
START_ATTEMPTS = 3


def find_bindir() -> Path | None:
    """The directory holding `initdb` and `pg_ctl`: Debian's newest version first, then PATH."""
    candidates = sorted(
        (d for d in DEBIAN_ROOT.glob("*/bin") if (d / "initdb").exists()),
        key=lambda d: _version_key(d.parent.name),
        reverse=True,
    )
    if candidates:
        return candidates[0]
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl", path=str(Path(initdb).parent)):
        return Path(initdb).resolve().parent
    return None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_database(dsn: str, database: str) -> str:
    """The same DSN pointing at another database (the path of a `postgresql://` URL)."""
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{database}"


@dataclass
class PgServer:
    """One running server: where it lives, its port, and how to reach it."""

    bindir: Path
    base: Path
    port: int
    run_as: str | None

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        """The server log (`pg_ctl -l`); its tail goes into start errors."""
        return self.base / "server.log"

    def dsn(self, database: str = "postgres") -> str:
        """A TCP DSN for the superuser `postgres` (trust auth, no password)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one of the server's tools (as the server user when we are root); never raises."""
        command = [str(self.bindir / tool), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=60, cwd=self.base
        )

    def init(self) -> None:
        """Create the cluster: trust auth, superuser `postgres`, no locale, no fsync."""
        args = ["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"]
        result = self.run("initdb", *args, "-D", str(self.data))
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}): {result.stderr.strip()}")

    def start(self) -> subprocess.CompletedProcess[str]:
        """Start the server and wait until it accepts connections (`pg_ctl -w`)."""
        options = f"-p {self.port} -k {self.base} -h 127.0.0.1 -c fsync=off"
        options += " -c synchronous_commit=off -c full_page_writes=off"
        args = ["-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "-t", "30"]
        return self.run("pg_ctl", *args, "start")

    def stop(self) -> None:
        """Stop at once (`-m immediate`): the data is thrown away anyway."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server log, for error messages."""
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def _server_user() -> str | None:
    """`postgres` when we are root (PostgreSQL refuses to run as root), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError as exc:
        raise RuntimeError(f"running as root needs a {SERVER_USER!r} user for the server") from exc
    if shutil.which("runuser") is None:
        raise RuntimeError("running as root needs `runuser` to start the server as postgres")
    return SERVER_USER


def _make_base(run_as: str | None) -> Path:
    """A fresh temp dir the server user owns (directly under the temp root, so it can reach it)."""
    base = Path(tempfile.mkdtemp(prefix="dli-pg-"))
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    return base


@contextmanager
def running_server(bindir: Path) -> Iterator[PgServer]:
    """Init and start a server in a temp dir; stop it and delete the dir on the way out."""
    run_as = _server_user()
    base = _make_base(run_as)
    server = PgServer(bindir=bindir, base=base, port=free_port(), run_as=run_as)
    try:
        server.init()
        for attempt in range(1, START_ATTEMPTS + 1):
            result = server.start()
            if result.returncode == 0:
                break
            if attempt == START_ATTEMPTS:
                raise RuntimeError(
                    f"pg_ctl start failed ({result.returncode}): {result.stderr.strip()}\n"
                    f"{server.log_tail()}"
                )
            server.port = free_port()  # most likely someone took the port meanwhile
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
