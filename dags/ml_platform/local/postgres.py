"""A PostgreSQL server of our own for the local platform's Airflow metadata database.

Debian's server binaries (installed with apt-get when missing and this runs as root), a
cluster initdb'd under <local dir>/platform/postgres/ that listens on 127.0.0.1 only, a
password-authenticated superuser `airflow` owning the database `airflow`. PostgreSQL refuses
to run as root: as root, every server command runs as the `postgres` user Debian's package
creates, and the cluster's folder belongs to it.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("platform.postgres")

DB_USER = "airflow"
DB_NAME = "airflow"
SERVER_USER = "postgres"  # Debian's package creates it
INSTALL_TIMEOUT_S = 600
COMMAND_TIMEOUT_S = 120


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server here and none can be installed: the platform cannot start."""


def _is_root() -> bool:
    return os.geteuid() == 0


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path))


def find_bindir() -> Path | None:
    """The newest Debian server's bin folder, else wherever `initdb` is on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def ensure_installed() -> Path:
    """The server's bin folder, installing Debian's `postgresql` first when it is missing."""
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    if not _is_root() or shutil.which("apt-get") is None:
        raise PostgresUnavailable(
            "the PostgreSQL server is not installed and cannot be installed from here "
            "(needs root and apt-get): install Debian's `postgresql` package, then retry"
        )
    # Debian's package would create and start a cluster of its own on 5432: we only want the
    # binaries, and start our own cluster.
    conf = Path("/etc/postgresql-common/createcluster.conf")
    if not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("create_main_cluster = false\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.info("installing PostgreSQL with apt-get (a few minutes)")
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=INSTALL_TIMEOUT_S)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
             "-o", "Dpkg::Options::=--force-confold", "postgresql"],
            check=True, env=env, timeout=INSTALL_TIMEOUT_S,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise PostgresUnavailable(f"installing PostgreSQL with apt-get failed: {exc}") from None
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable("apt-get installed postgresql but no initdb was found")
    return bindir


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *command] if _is_root() else command


def _give_to_server_user(path: Path) -> None:
    if _is_root():
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _check_reachable(path: Path) -> None:
    """As root, the server user must be able to walk down to the cluster's folder."""
    if not _is_root():
        return
    for parent in [*reversed(path.parents)]:
        if parent.exists() and not os.stat(parent).st_mode & 0o001:
            raise RuntimeError(
                f"{parent} is not searchable by other users, so the `{SERVER_USER}` user cannot "
                f"reach {path}: use a LOCAL_DIR under a folder others can enter"
            )


@dataclass(frozen=True)
class Postgres:
    """The local cluster: where it lives, its port and the `airflow` user's password."""

    root: Path  # <local dir>/platform/postgres
    port: int
    password: str

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def sqlalchemy_url(self, driver: str = "psycopg2") -> str:
        return f"postgresql+{driver}://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{DB_NAME}"

    def pid(self) -> int | None:
        """The postmaster's PID from its pid file (None when it does not run)."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
        except (FileNotFoundError, IndexError, PermissionError):
            return None
        pid = int(first)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self, bindir: Path) -> None:
        """initdb a cluster whose superuser `airflow` logs in with the password over TCP."""
        _check_reachable(self.root)
        for folder in (self.root, self.data_dir, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            _give_to_server_user(folder)
        self.data_dir.chmod(0o700)
        # initdb reads the password from a file only the server user can read; it goes away after.
        pwfile = self.root / ".initdb-password"
        pwfile.touch(mode=0o600)
        pwfile.write_text(self.password + "\n")
        _give_to_server_user(pwfile)
        log.info("initdb of the metadata database's cluster in %s", self.data_dir)
        try:
            subprocess.run(
                _as_server_user(
                    [str(bindir / "initdb"), "-D", str(self.data_dir), "-U", DB_USER,
                     "--pwfile", str(pwfile), "--auth", "scram-sha-256", "-E", "UTF8",
                     "--locale", "C"]
                ),
                check=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed: {exc.stderr.strip()[-500:]}") from None
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, bindir: Path, timeout_s: float = 60) -> int:
        """Start the server on 127.0.0.1:port; returns the postmaster's PID."""
        log_file = self.log_file
        if not log_file.exists():
            log_file.touch()
            _give_to_server_user(log_file)
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir}"
        log.info("starting PostgreSQL on 127.0.0.1:%d (log: %s)", self.port, log_file)
        try:
            subprocess.run(
                _as_server_user(
                    [str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(log_file),
                     "-o", options, "-w", "-t", str(int(timeout_s)), "start"]
                ),
                check=True, capture_output=True, text=True, timeout=timeout_s + 30,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            tail = log_file.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr.strip()}\n{tail}") from None
        pid = self.pid()
        if pid is None:
            raise RuntimeError(f"PostgreSQL started but wrote no pid file in {self.data_dir}")
        return pid

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Until the `airflow` user can log in over TCP (bounded)."""
        import psycopg2

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg2.connect(
                    host="127.0.0.1", port=self.port, user=DB_USER, password=self.password,
                    dbname="postgres", connect_timeout=3,
                ).close()  # fmt: skip
                return
            except psycopg2.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"PostgreSQL on 127.0.0.1:{self.port} not ready after {timeout_s:.0f}s: "
                        f"{str(exc).strip()}"
                    ) from None
                time.sleep(0.5)

    def ensure_database(self) -> None:
        """The `airflow` database, created once."""
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user=DB_USER, password=self.password,
            dbname="postgres", connect_timeout=5,
        )  # fmt: skip
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,))
                if cur.fetchone() is None:
                    log.info("creating the database %r", DB_NAME)
                    cur.execute(f'CREATE DATABASE "{DB_NAME}" OWNER "{DB_USER}"')
        finally:
            conn.close()

    def stop(self, timeout_s: float = 60) -> bool:
        """Fast shutdown of the postmaster by its PID (SIGINT), SIGQUIT past the bound."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pid() is None:
                return True
            time.sleep(0.2)
        log.warning("PostgreSQL (pid %d) still up after %.0fs: immediate shutdown", pid, timeout_s)
        os.kill(pid, signal.SIGQUIT)
        return True
