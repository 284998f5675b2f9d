"""The platform on one machine (`make up` / `make down`): real Airflow services, PostgreSQL,
MLflow and the SMTP sink, all on 127.0.0.1, container tasks run as local processes.

    python -m ml_platform.local.stack [--local-dir D] up [--airflow-port P ...]
    python -m ml_platform.local.stack [--local-dir D] down | status
    python -m ml_platform.local.stack [--local-dir D] airflow <airflow CLI arguments>

Everything lives under <local dir>/platform/: `state.json` (ports and URLs), `secrets/` (0700:
the admin's password, the database password, the API's signing keys, each 0600), `run/`
(the PID of every process started, with its start time so a reused PID is never signalled),
`logs/`, `postgres/` (the metadata database's cluster) and `airflow/` (AIRFLOW_HOME). Datasets,
MLflow data, model servers and notifications are where `make demo` keeps them.

`up` is idempotent: what runs is left alone, what does not is started, and each service is
waited for (bounded) before the next. `down` stops every recorded process by its PID and
keeps the data. Exit status 3: PostgreSQL is not installed and cannot be installed here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml_platform.local.mlflow_server import free_port
from ml_platform.local.postgres import Postgres, PostgresUnavailable, ensure_installed

LOCAL_POKE_ENV = "ML_PLATFORM_LOCAL_POKE_S"  # read by ml_platform.local.platform_policies
# ml_platform.local.runner.POD_RECORD_ENV, spelt out: importing the runner imports Airflow,
# which must not happen here before the services' environment is set.
POD_RECORD_ENV = "ML_PLATFORM_LOCAL_POD_RECORDS"

log = logging.getLogger("platform")

ADMIN_USER = "admin"
DEFAULT_PORTS = {"airflow": 8080, "mlflow": 5000, "smtp": 8025, "postgres": 5433}
EXIT_NO_POSTGRES = 3
SENSOR_POKE_S = 5  # ml_platform.local.platform_policies: a local glob is cheap
# Services in start order; `down` stops them in reverse.
PROCESSES = ("smtp", "mlflow", "api-server", "scheduler", "dag-processor", "triggerer")
AIRFLOW_COMPONENTS = ("scheduler", "dag-processor", "triggerer")
HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
START_TIMEOUT_S = {"smtp": 30, "mlflow": 120, "api-server": 240}
COMPONENTS_TIMEOUT_S = 240
PREPARE_TIMEOUT_S = 600
STOP_TIMEOUT_S = 30
# The platform's airflow_local_settings.py (ml_platform.local.platform_policies). Kept here,
# away from any module that imports Airflow: Airflow imports this file while it initializes.
LOCAL_SETTINGS = (
    "from ml_platform.local.platform_policies import (  # noqa: F401\n"
    "    dag_policy,\n    pod_mutation_hook,\n    task_policy,\n)\n"
)


class PlatformError(RuntimeError):
    """A service did not come up; the message says which, why, and where its log is."""


# --- where things live -------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    local_dir: Path

    @property
    def root(self) -> Path:
        return self.local_dir / "platform"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def password_file(self) -> Path:
        """The admin's password, in the simple auth manager's own file format (0600)."""
        return self.secrets / "airflow-passwords.json"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"


@dataclass(frozen=True)
class State:
    """The ports chosen at the first `up`; later ones reuse them."""

    airflow_port: int
    mlflow_port: int
    smtp_port: int
    postgres_port: int

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.airflow_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def load_state(layout: Layout) -> State | None:
    if not layout.state_file.exists():
        return None
    data = json.loads(layout.state_file.read_text())
    return State(**{k: data[k] for k in State.__dataclass_fields__})


def _choose_state(layout: Layout, wanted: dict[str, int | None]) -> State:
    """Saved ports, unless given now; 0 picks a free port."""
    saved = load_state(layout)
    ports = {}
    for name, default in DEFAULT_PORTS.items():
        port = wanted.get(name)
        if port is None:
            port = getattr(saved, f"{name}_port") if saved else default
        ports[f"{name}_port"] = port or free_port()
    state = State(**ports)
    layout.root.mkdir(parents=True, exist_ok=True)
    doc = {**asdict(state), "airflow_url": state.airflow_url, "mlflow_url": state.mlflow_url}
    doc["admin_user"] = ADMIN_USER
    doc["password_file"] = str(layout.password_file)
    layout.state_file.write_text(json.dumps(doc, indent=2) + "\n")
    return state


def _secret(layout: Layout, name: str) -> str:
    """A generated secret kept in a 0600 file (created once)."""
    layout.secrets.mkdir(parents=True, exist_ok=True)
    layout.secrets.chmod(0o700)
    path = layout.secrets / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def admin_password(layout: Layout) -> str:
    """The admin's password: created once in the simple auth manager's password file, which
    then neither generates nor prints one."""
    path = layout.password_file
    if not path.exists():
        layout.secrets.mkdir(parents=True, exist_ok=True)
        layout.secrets.chmod(0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps({ADMIN_USER: secrets.token_urlsafe(12)}) + "\n")
    return json.loads(path.read_text())[ADMIN_USER]


def postgres_of(layout: Layout, state: State) -> Postgres:
    return Postgres(layout.root / "postgres", state.postgres_port, _secret(layout, "db-password"))


def parallelism() -> int:
    """The executor's slots: one per core this process may use (`nproc`)."""
    return len(os.sched_getaffinity(0))


def airflow_environment(layout: Layout, state: State) -> dict[str, str]:
    """The environment of every Airflow process of the platform (and of `airflow` CLI calls).

    Secrets travel in the environment, never in argv."""
    from ml_platform.local.run_dag import local_environment

    env = local_environment(layout.local_dir, state.mlflow_url, smtp_port=state.smtp_port)
    db = postgres_of(layout, state)
    env.update(
        {
            "AIRFLOW_HOME": str(layout.airflow_home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db.sqlalchemy_url("psycopg2"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db.sqlalchemy_url("asyncpg"),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism()),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(layout.password_file),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(state.airflow_port),
            "AIRFLOW__API__BASE_URL": state.airflow_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{state.airflow_url}/execution/",
            # One signing key for every component: the scheduler's tokens must pass the API's.
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret(layout, "jwt-secret"),
            "AIRFLOW__API__SECRET_KEY": _secret(layout, "api-secret-key"),
            # A new DAG file shows up within half a minute, not the default five.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # A task's supervisor can miss its process's exit until its next wake-up, at most
            # this many seconds; at the default 5 a finished trial held its executor slot 5 s
            # longer in about half the trials measured. A heartbeat a second per running task
            # is nothing to an API server on 127.0.0.1.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            LOCAL_POKE_ENV: str(SENSOR_POKE_S),
            # Each container task's checked pod spec, for the e2e checks of placement.
            POD_RECORD_ENV: str(layout.root / "pods"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return {**os.environ, **env}


# --- processes recorded by PID ------------------------------------------------------------


def _start_ticks(pid: int) -> str | None:
    """The process's start time (clock ticks since boot): a PID and this name one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def recorded_pid(layout: Layout, name: str) -> int | None:
    """The PID of the process `name` started by `up`, if that very process still runs."""
    try:
        pid_text, ticks = layout.pid_file(name).read_text().split()
    except (FileNotFoundError, ValueError):
        return None
    pid = int(pid_text)
    return pid if _start_ticks(pid) == ticks and _alive(pid) else None


def _alive(pid: int) -> bool:
    """Running: not gone, and not a zombie (exited, waiting for its parent to notice)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _record(layout: Layout, name: str, pid: int) -> None:
    layout.run.mkdir(parents=True, exist_ok=True)
    layout.pid_file(name).write_text(f"{pid} {_start_ticks(pid)}\n")


def _log_tail(path: Path, chars: int = 2500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return "(no log)"


def _spawn(layout: Layout, name: str, command: list[str], env: dict[str, str]) -> int:
    """Start `command` detached (its own session, so `down` can stop its children with it)."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    log_file = layout.log_file(name)
    with open(log_file, "ab") as out:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=layout.local_dir,
        )
    _record(layout, name, process.pid)
    log.info("%s started (pid %d, log %s)", name, process.pid, log_file)
    return process.pid


def _wait(
    layout: Layout, name: str, ready: Callable[[], bool], timeout_s: float, what: str
) -> None:
    """Until `ready()` (bounded); fails at once, with its log, when the process died."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if recorded_pid(layout, name) is None:
            raise PlatformError(
                f"{name} exited while starting; the end of {layout.log_file(name)}:\n"
                f"{_log_tail(layout.log_file(name))}"
            )
        if time.monotonic() > deadline:
            raise PlatformError(
                f"{name} not {what} after {timeout_s:.0f}s; the end of "
                f"{layout.log_file(name)}:\n{_log_tail(layout.log_file(name))}"
            )
        time.sleep(1)


def stop_processes(
    layout: Layout, names: list[str], timeout_s: float = STOP_TIMEOUT_S
) -> list[str]:
    """SIGTERM to each process group `up` started (workers and tasks with it), all at once;
    SIGKILL to what is left of a group past the bound. Returns the names that were running."""
    signalled: dict[str, int] = {}
    for name in names:
        pid = recorded_pid(layout, name)
        if pid is None:
            layout.pid_file(name).unlink(missing_ok=True)
            continue
        log.info("stopping %s (pid %d)", name, pid)
        try:
            os.killpg(pid, signal.SIGTERM)
            signalled[name] = pid
        except ProcessLookupError:
            layout.pid_file(name).unlink(missing_ok=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_alive(pid) for pid in signalled.values()):
        time.sleep(0.3)
    for name, pid in signalled.items():
        try:
            os.killpg(pid, signal.SIGKILL)  # stragglers of the group (or the leader itself)
            log.warning("%s: killed what was left of its process group", name)
        except ProcessLookupError:
            pass
        layout.pid_file(name).unlink(missing_ok=True)
    return list(signalled)


def stop_process(layout: Layout, name: str, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """stop_processes for one; False when it was not running."""
    return bool(stop_processes(layout, [name], timeout_s))


# --- health -------------------------------------------------------------------------------


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def airflow_health(state: State) -> dict[str, Any] | None:
    """The API server's /monitor/health (no login needed): each component's heartbeat."""
    try:
        url = f"{state.airflow_url}/api/v2/monitor/health"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
        return None


def _component_healthy(state: State, name: str, since: datetime | None = None) -> bool:
    """Healthy by its heartbeat; with `since`, a heartbeat of a process started then (the
    last one of a process that just died counts as healthy for a while)."""
    key = HEALTH_KEYS[name]
    health = (airflow_health(state) or {}).get(key) or {}
    if health.get("status") != "healthy":
        return False
    beat = health.get(f"latest_{key}_heartbeat")
    return since is None or (beat is not None and datetime.fromisoformat(beat) >= since)


def _smtp_ready(state: State) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", state.smtp_port), timeout=3) as conn:
            return conn.recv(64).startswith(b"220")
    except OSError:
        return False


# --- up / down / status ---------------------------------------------------------------------


def _command(name: str, layout: Layout, state: State) -> list[str]:
    from ml_platform.local.mlflow_server import server_command

    python = sys.executable
    airflow = str(Path(python).with_name("airflow"))
    return {
        "smtp": [python, "-m", "ml_platform.local.smtp_server",
                 "--folder", str(layout.local_dir / "notifications"),
                 "--port", str(state.smtp_port)],
        "mlflow": server_command(layout.local_dir / "mlflow", state.mlflow_port),
        "api-server": [airflow, "api-server", "--host", "127.0.0.1",
                       "--port", str(state.airflow_port), "--workers", "1"],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
        "triggerer": [airflow, "triggerer"],
    }[name]  # fmt: skip


def _ready_check(
    name: str, state: State, since: datetime | None = None
) -> tuple[Callable[[], bool], str]:
    if name == "smtp":
        return (lambda: _smtp_ready(state)), "accepting SMTP"
    if name == "mlflow":
        return (lambda: _http_ok(f"{state.mlflow_url}/health")), "healthy"
    if name == "api-server":
        return (lambda: airflow_health(state) is not None), "answering /api/v2/monitor/health"
    return (lambda: _component_healthy(state, name, since)), "healthy (heartbeat)"


def _port_of(name: str, state: State) -> int | None:
    return {
        "smtp": state.smtp_port,
        "mlflow": state.mlflow_port,
        "api-server": state.airflow_port,
    }.get(name)


def _running(layout: Layout, state: State) -> dict[str, bool]:
    running = {name: recorded_pid(layout, name) is not None for name in PROCESSES}
    running["postgres"] = postgres_of(layout, state).pid() is not None
    return running


def _prepare_airflow(layout: Layout, env: dict[str, str]) -> None:
    """Migrate the metadata DB, install the policies, create the GPU pools: in a process of
    its own, since Airflow reads its settings when first imported."""
    log.info("migrating the Airflow metadata DB and creating the GPU pools")
    layout.logs.mkdir(parents=True, exist_ok=True)
    with open(layout.log_file("prepare"), "ab") as out:
        done = subprocess.run(
            [sys.executable, "-m", "ml_platform.local.stack", "prepare-airflow"],
            env=env, stdout=out, stderr=subprocess.STDOUT, timeout=PREPARE_TIMEOUT_S,
            check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise PlatformError(
            f"preparing Airflow failed; the end of {layout.log_file('prepare')}:\n"
            f"{_log_tail(layout.log_file('prepare'))}"
        )


def up(layout: Layout, ports: dict[str, int | None]) -> tuple[State, bool]:
    """Start what does not run; returns the state and whether everything already ran."""
    started = time.monotonic()
    state = _choose_state(layout, ports)
    admin_password(layout)
    running = _running(layout, state)
    if all(running.values()) and all(_component_healthy(state, n) for n in AIRFLOW_COMPONENTS):
        log.info("the local platform is already running: nothing to start")
        return state, True
    for name in [n for n in PROCESSES if not running[n]]:
        port = _port_of(name, state)
        if port is not None and _port_in_use(port):
            raise PlatformError(
                f"port {port} for {name} is taken by another program: stop it, or choose "
                f"another port (`make up` variables AIRFLOW_PORT, MLFLOW_PORT, SMTP_PORT)"
            )
    db = postgres_of(layout, state)
    if running["postgres"]:
        log.info("postgres already running (pid %s)", db.pid())
    else:
        bindir = ensure_installed()
        if not db.initialized():
            db.init(bindir)
        if _port_in_use(state.postgres_port):
            raise PlatformError(
                f"port {state.postgres_port} for PostgreSQL is taken: choose another "
                "(POSTGRES_PORT)"
            )
        pid = db.start(bindir)
        log.info("postgres started (pid %d)", pid)
    db.wait_ready()
    db.ensure_database()
    env = airflow_environment(layout, state)
    if not all(running[n] for n in ("api-server", *AIRFLOW_COMPONENTS)):
        _prepare_airflow(layout, env)
    spawned_at: dict[str, datetime] = {}
    for name in PROCESSES:
        if running[name]:
            log.info("%s already running (pid %s)", name, recorded_pid(layout, name))
            continue
        spawned_at[name] = datetime.now(UTC)
        _spawn(layout, name, _command(name, layout, state), env)
        if name in START_TIMEOUT_S:
            ready, what = _ready_check(name, state)
            _wait(layout, name, ready, START_TIMEOUT_S[name], what)
            log.info("%s is %s", name, what)
    for name in AIRFLOW_COMPONENTS:  # started together above; their heartbeats come later
        ready, what = _ready_check(name, state, spawned_at.get(name))
        _wait(layout, name, ready, COMPONENTS_TIMEOUT_S, what)
        log.info("%s is %s", name, what)
    log.info("the local platform is up in %.0fs", time.monotonic() - started)
    return state, False


def down(layout: Layout) -> list[str]:
    """Stop what `up` started, newest first, and the model servers the runs deployed."""
    stopped = stop_processes(layout, list(reversed(PROCESSES)))
    state = load_state(layout)
    if state is not None and postgres_of(layout, state).stop():
        stopped.append("postgres")
    stopped += [f"model server {m}" for m in _stop_model_servers(layout)]
    return stopped


def _stop_model_servers(layout: Layout) -> list[str]:
    try:
        from deployer.targets.local import stop_all_models
    except ImportError:  # the deployer is not installed: nothing of it can be serving
        return []
    return list(stop_all_models(str(layout.local_dir / "deployer")))


def status(layout: Layout) -> dict[str, Any]:
    state = load_state(layout)
    if state is None:
        return {}
    processes: dict[str, Any] = {n: recorded_pid(layout, n) for n in PROCESSES}
    processes["postgres"] = postgres_of(layout, state).pid()
    return {"processes": processes, "health": airflow_health(state)}


def access_lines(layout: Layout, state: State) -> list[str]:
    """What `make up` prints: where each service answers, and the login (the one place the
    password is shown)."""
    return [
        f"  Airflow UI and REST API  {state.airflow_url}",
        f"    login: {ADMIN_USER} / {admin_password(layout)}   (kept in {layout.password_file})",
        f"  MLflow                   {state.mlflow_url}",
        f"  notifications (SMTP)     127.0.0.1:{state.smtp_port}, saved in "
        f"{layout.local_dir / 'notifications'}",
        f"  PostgreSQL (metadata DB) 127.0.0.1:{state.postgres_port}",
        f"  logs                     {layout.logs} and {layout.airflow_home / 'logs'}",
        f"  executor                 LocalExecutor, {parallelism()} slot(s)",
        "  stop everything with `make down` (the data stays)",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stack", description=__doc__.splitlines()[0])
    parser.add_argument("--local-dir", type=Path, default=Path(".local"))
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start what is not running, wait for its health")
    for name in DEFAULT_PORTS:
        start.add_argument(f"--{name}-port", type=int, help="0: any free port")
    commands.add_parser("down", help="stop what up started (data kept)")
    commands.add_parser("status", help="the recorded PIDs and Airflow's health, as JSON")
    cli = commands.add_parser("airflow", help="the airflow CLI, against the local platform")
    cli.add_argument("args", nargs=argparse.REMAINDER)
    commands.add_parser("prepare-airflow", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    layout = Layout(args.local_dir.resolve())
    if args.command == "prepare-airflow":
        from ml_platform.local.run_dag import prepare_airflow_home

        prepare_airflow_home(LOCAL_SETTINGS)
        return 0
    # Airflow reads its settings when first imported: this process's own imports of the
    # platform library see the platform's home, not a default one.
    os.environ.setdefault("AIRFLOW_HOME", str(layout.airflow_home))
    if args.command == "up":
        ports = {name: getattr(args, f"{name}_port") for name in DEFAULT_PORTS}
        try:
            state, already = up(layout, ports)
        except PostgresUnavailable as exc:
            print(f"up: PostgreSQL unavailable: {exc}", file=sys.stderr)
            return EXIT_NO_POSTGRES
        except (PlatformError, RuntimeError, TimeoutError) as exc:
            print(f"up: {exc}", file=sys.stderr)
            return 1
        print(f"\nThe local platform is {'already running' if already else 'up'}:")
        print("\n".join(access_lines(layout, state)))
        return 0
    if args.command == "down":
        stopped = down(layout)
        print(f"down: stopped {', '.join(stopped) or 'nothing (nothing was running)'}; "
              f"data kept in {layout.local_dir}")  # fmt: skip
        return 0
    if args.command == "status":
        print(json.dumps(status(layout), indent=2))
        return 0
    state = load_state(layout)
    if state is None:
        parser.error(f"no local platform in {layout.root}: run `make up` first")
    env = airflow_environment(layout, state)
    airflow = str(Path(sys.executable).with_name("airflow"))
    os.execve(airflow, [airflow, *args.args], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
