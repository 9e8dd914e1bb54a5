"""A real PostgreSQL server (Debian's package) on a free loopback port, for tests and benches.

``initdb`` refuses to run as root, so under root the cluster belongs to the
``postgres`` user the Debian package creates and every server process runs as
that user. Password authentication (scram) is on for TCP, so a wrong password
is refused exactly as in production. ``stop()`` and ``start()`` keep the port
and the data, which is what the restart tests need.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from jobqueue_devkit.errors import DevkitError
from jobqueue_devkit.ports import free_port
from jobqueue_devkit.procs import pid_alive

START_TIMEOUT_S = 30.0
PORT_ATTEMPTS = 5
SUPERUSER = "jobqueue"
PASSWORD = "jobqueue-test-password"
INSTALL_HINT = "install Debian's postgresql package (`make postgres` does it as root)"


def find_bindir() -> Path:
    """The newest installed server's bin directory (``/usr/lib/postgresql/<v>/bin``)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise DevkitError(f"no PostgreSQL server found: {INSTALL_HINT}")


def _run_as() -> pwd.struct_passwd | None:
    """The account the server runs as: ``postgres`` under root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise DevkitError(f"running as root without a postgres user: {INSTALL_HINT}") from None


@dataclass
class PostgresServer:
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="jq-pg-")))
    host: str = "127.0.0.1"
    port: int = 0
    bindir: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "postgres.log"

    def dsn(self, dbname: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://{SUPERUSER}:{password}@{self.host}:{self.port}/{dbname}"

    def _popen(self, argv: list[str], *, log: Path | None = None) -> subprocess.Popen[bytes]:
        user = _run_as()
        out = log.open("ab") if log is not None else subprocess.DEVNULL
        try:
            return subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                start_new_session=True,
                cwd=self.workdir,
            )
        finally:
            if log is not None and not isinstance(out, int):
                out.close()

    def _initdb(self, bindir: Path) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        user = _run_as()
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if user is not None:
            for path in (self.workdir, pwfile):
                os.chown(path, user.pw_uid, user.pw_gid)
        proc = self._popen(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            log=self.workdir / "initdb.log",
        )
        if proc.wait(120) != 0:
            tail = (self.workdir / "initdb.log").read_text(errors="replace")[-1500:]
            raise DevkitError(f"initdb failed (exit {proc.returncode}):\n{tail}")
        pwfile.unlink()

    def _ready(self) -> bool:
        try:
            with psycopg.connect(self.dsn(), connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def start(self) -> PostgresServer:
        bindir = self.bindir or find_bindir()
        if not (self.datadir / "PG_VERSION").exists():
            self._initdb(bindir)
        fixed_port = self.port != 0
        for _ in range(1 if fixed_port else PORT_ATTEMPTS):
            if not fixed_port:
                self.port = free_port(self.host)
            argv = [
                str(bindir / "postgres"),
                "-D",
                str(self.datadir),
                "-p",
                str(self.port),
                "-k",
                str(self.workdir),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                "max_connections=300",
                # Test data is disposable: skip the fsyncs that would slow every commit.
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
            ]
            self.process = self._popen(argv, log=self.log_path)
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                if self._ready():
                    return self
                time.sleep(0.1)
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-1500:]
            if "already in use" in tail and not fixed_port:
                continue
            raise DevkitError(f"postgres did not start on port {self.port}:\n{tail}")
        raise DevkitError(f"postgres: no free port after {PORT_ATTEMPTS} attempts")

    def stop(self, grace_s: float = 15.0) -> None:
        """Fast shutdown (SIGINT: clients are disconnected, data is kept), then SIGKILL."""
        proc, self.process = self.process, None
        if proc is None:
            return
        for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait_s)
            if not pid_alive(proc.pid):
                return

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5)

    def create_database(self, name: str) -> str:
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
