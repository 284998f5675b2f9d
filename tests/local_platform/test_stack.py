"""The local platform's pieces, without starting it: where its secrets live, how a process is
recorded and stopped by PID, the ports a later `make up` keeps, the Airflow environment, the
local sensor policy. Quick; part of `make test`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ml_platform.local import stack
from ml_platform.local.platform_policies import LOCAL_POKE_ENV, task_policy


@pytest.fixture
def layout(tmp_path: Path) -> stack.Layout:
    return stack.Layout(tmp_path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_generated_once_in_private_files(layout: stack.Layout) -> None:
    password = stack.admin_password(layout)
    assert stack.admin_password(layout) == password
    # The simple auth manager's own format: it then neither generates nor prints a password.
    assert json.loads(layout.password_file.read_text()) == {stack.ADMIN_USER: password}
    secret = stack._secret(layout, "jwt-secret")
    assert stack._secret(layout, "jwt-secret") == secret != password
    assert _mode(layout.secrets) == 0o700
    assert _mode(layout.password_file) == _mode(layout.secrets / "jwt-secret") == 0o600


def test_a_later_up_keeps_the_first_ports(layout: stack.Layout) -> None:
    first = stack._choose_state(layout, {"airflow": 0, "mlflow": 0, "smtp": None})
    assert first.airflow_port > 0 and first.smtp_port == stack.DEFAULT_PORTS["smtp"]
    assert stack._choose_state(layout, {}) == first
    moved = stack._choose_state(layout, {"airflow": first.airflow_port + 1})
    assert moved.airflow_port == first.airflow_port + 1 and moved.mlflow_port == first.mlflow_port
    saved = json.loads(layout.state_file.read_text())
    assert saved["airflow_url"] == f"http://127.0.0.1:{moved.airflow_port}"
    assert "password" not in json.dumps({k: v for k, v in saved.items() if k != "password_file"})


def test_airflow_environment_runs_the_real_services_on_postgres(layout: stack.Layout) -> None:
    state = stack._choose_state(layout, {"airflow": 18080, "mlflow": 15000, "smtp": 18025})
    env = stack.airflow_environment(layout, state)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == str(len(os.sched_getaffinity(0)))
    # A finished task frees its executor slot within a second (docs/local-platform.md).
    assert env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == stack._secret(layout, "jwt-secret")
    assert env["ML_PLATFORM_RUNTIME"] == "local"
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:15000"
    assert env["AIRFLOW_HOME"] == str(layout.airflow_home)
    # Secrets reach the services in their environment, never in their command lines.
    secrets = [stack.admin_password(layout), stack._secret(layout, "db-password"),
               env["AIRFLOW__API_AUTH__JWT_SECRET"], env["AIRFLOW__API__SECRET_KEY"]]  # fmt: skip
    for name in stack.PROCESSES:
        command = " ".join(stack._command(name, layout, state))
        assert not any(secret in command for secret in secrets), name


def test_a_recorded_process_is_stopped_with_its_children(layout: stack.Layout) -> None:
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    pid = stack._spawn(layout, "sleeper", [sys.executable, "-c", script], dict(os.environ))
    assert stack.recorded_pid(layout, "sleeper") == pid
    deadline = time.monotonic() + 10  # its child started, however busy the machine
    while True:
        children = subprocess.run(
            ["pgrep", "-g", str(pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        if len(children) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(children) == 2
    assert stack.stop_process(layout, "sleeper", timeout_s=10)
    deadline = time.monotonic() + 5  # SIGKILL is delivered, not waited for
    while not all(_gone(int(child)) for child in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(int(child)) for child in children)
    assert stack.recorded_pid(layout, "sleeper") is None
    assert not stack.stop_process(layout, "sleeper")  # stopping twice: nothing to stop


def _gone(pid: int) -> bool:
    """Exited (a zombie waits only for its parent to read its status)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_reused_pid_is_never_taken_for_the_recorded_process(layout: stack.Layout) -> None:
    layout.run.mkdir(parents=True)
    # This very process, recorded with another start time: a PID the system gave out again.
    layout.pid_file("mlflow").write_text(f"{os.getpid()} 1\n")
    assert stack.recorded_pid(layout, "mlflow") is None
    assert not stack.stop_process(layout, "mlflow")  # and so it is not signalled


def test_sensors_look_often_on_the_local_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    def sensor() -> SimpleNamespace:
        return SimpleNamespace(poke_interval=300.0, task_id="wait", owner="ml-platform")

    monkeypatch.setattr("ml_platform.local.platform_policies.platform_task_policy", lambda t: None)
    monkeypatch.delenv(LOCAL_POKE_ENV, raising=False)
    untouched = sensor()
    task_policy(untouched)
    assert untouched.poke_interval == 300.0
    monkeypatch.setenv(LOCAL_POKE_ENV, "5")
    capped = sensor()
    task_policy(capped)
    assert capped.poke_interval == 5.0


def test_the_platform_keeps_each_pod_spec_where_the_runner_writes_them(tmp_path: Path):
    from ml_platform.local import runner

    assert stack.POD_RECORD_ENV == runner.POD_RECORD_ENV  # spelt out in stack: no Airflow import
    ti = SimpleNamespace(dag_id="d", run_id="r1", task_id="train", map_index=2, try_number=1)
    from kubernetes.client import models as k8s

    pod = k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base")]))
    os.environ[runner.POD_RECORD_ENV] = str(tmp_path)
    try:
        path = runner.record_pod(pod, "gpu", {"ti": ti})
    finally:
        del os.environ[runner.POD_RECORD_ENV]
    assert path == tmp_path / "d" / "r1" / "train.2.json"
    record = json.loads(path.read_text())
    assert (record["pool"], record["gpus"], record["map_index"]) == ("gpu", 0, 2)
    assert runner.record_pod(pod, "gpu", {"ti": ti}) is None  # not on the platform: nothing kept
