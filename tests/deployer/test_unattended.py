"""Operable unattended: a dependency that is down fails a command fast and in one line, an
interrupted deploy is cleaned up by the next command, the rollback history never loops, and
a failed version says where it failed. Real MLflow server, real model servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import mlflow
import pytest
import requests
from deployer_testkit import (
    CONSOLE_SCRIPT,
    ONE_ROW_MODEL,
    FakeEndpoint,
    LocalDeployer,
    closed_port_url,
    log_code_model,
    log_torch_model,
)
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from deployer import processes
from deployer.registry import (
    CHAMPION,
    DEPLOYED_AT_TAG,
    FAILED_STEP_TAG,
    PREVIOUS_CHAMPION_TAG,
    Registry,
)
from ml_dependencies import TIMEOUT_ENV, bounded_dependencies, unreachable

# Far above what each case needs with the bound set low (seconds), far below MLflow's own
# default of about four minutes: a busy machine cannot make these fail, a lost bound does.
WELL_UNDER_S = 60


def _console(tmp_path: Path, tracking_uri: str, bound_s: str, *args: str) -> tuple:
    """The deployer console script against `tracking_uri`: (exit code, stdout, stderr, s)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRFLOW_CTX_"))}
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        DEPLOYER_TARGET="local",
        DEPLOYER_STATE_DIR=str(tmp_path / "state"),
        TRAINER_XCOM_PATH=str(tmp_path / "xcom.json"),
        **{TIMEOUT_ENV: bound_s},
    )
    started = time.monotonic()
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


@pytest.mark.parametrize(
    ("args", "step"),
    [
        (("status", "--model-name", "churn"), "champion"),
        (("deploy", "--model-name", "churn", "--run-id", "0" * 32), "run"),
        (("rollback", "--model-name", "churn"), "champion"),
    ],
)
def test_an_unreachable_mlflow_fails_fast_in_one_line_naming_it(
    tmp_path: Path, args: tuple[str, ...], step: str
) -> None:
    url = closed_port_url()

    code, stdout, stderr, took = _console(tmp_path, url, "5", *args)

    assert code == 1
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"deployer {args[0]}: failed at {step}: MLflow {url}: unreachable: ")
    assert "Connection refused" in stderr
    assert f"{TIMEOUT_ENV}=5s" in stderr
    assert "Traceback" not in stdout + stderr
    assert took < WELL_UNDER_S
    assert not (tmp_path / "xcom.json").exists()


def test_the_bound_sets_mlflows_retries_and_timeouts(tmp_path: Path) -> None:
    # 12 s: room for two retries (three attempts) of int((12 - 2.5) / 3) = 3 s each.
    with FakeEndpoint(answer_503=True) as failing:
        code, _, stderr, _ = _console(tmp_path, failing.url, "12", "status", "--model-name", "m")
    assert code == 1
    assert f"MLflow {failing.url}: unreachable: too many 503 error responses" in stderr
    assert failing.connections == 3  # MLflow's default would make 8

    with FakeEndpoint(answer_503=False) as hanging:
        code, _, stderr, took = _console(tmp_path, hanging.url, "12", "status", "--model-name", "m")
    assert code == 1
    assert f"MLflow {hanging.url}: unreachable: " in stderr and "timed out" in stderr, stderr
    assert "read timeout=3" in stderr
    assert hanging.connections == 3
    assert took < WELL_UNDER_S  # MLflow's default: 8 attempts of 120 s


def test_the_bound_reaches_boto3_clients_and_names_the_storage_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = closed_port_url()
    monkeypatch.setenv(TIMEOUT_ENV, "12")
    monkeypatch.setenv("AWS_ENDPOINT_URL", storage)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    session_before = boto3.DEFAULT_SESSION

    with bounded_dependencies():
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
        # How MLflow's S3 artifact store makes its clients: boto3.client with its own Config.
        client = boto3.client(
            "s3",
            endpoint_url=storage,
            region_name="us-east-1",
            aws_access_key_id="k",
            aws_secret_access_key="s",
        )
        assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (3, 3)
        assert client.meta.config.retries["total_max_attempts"] == 3
        started = time.monotonic()
        with pytest.raises(Exception) as failure:
            client.head_bucket(Bucket="models")
        assert time.monotonic() - started < WELL_UNDER_S

    line = unreachable(failure.value)
    assert line is not None and line.startswith(f"storage {storage}: unreachable: ")
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ  # put back as it was
    assert boto3.DEFAULT_SESSION is session_before


def test_a_bad_bound_fails_at_config(tmp_path: Path) -> None:
    code, _, stderr, _ = _console(
        tmp_path, closed_port_url(), "soon", "status", "--model-name", "m"
    )
    assert code == 1
    assert stderr == (
        f"deployer status: failed at config: {TIMEOUT_ENV}='soon': expected a number of "
        "seconds above 0\n"
    )


def _sleeper(log_file: Path) -> int:
    """A process standing in for a model server left behind: it only has to be stopped."""
    return processes.spawn([sys.executable, "-c", "import time; time.sleep(600)"], log_file)


def _entry(pid: int, version: str, tmp_path: Path) -> dict:
    port = processes.free_port()
    return {
        "pid": pid,
        "port": port,
        "url": f"http://127.0.0.1:{port}",
        "version": version,
        "model_uri": f"models:/x/{version}",
        "log": str(tmp_path / "left.log"),
        "started_at": "2026-12-01T00:00:00+00:00",
    }


def test_the_next_command_cleans_up_after_a_killed_deploy(
    local_deployer: LocalDeployer, model_name: str, tmp_path: Path
) -> None:
    client = MlflowClient()
    good = local_deployer("deploy", "--run-id", log_torch_model(seed=1), "--model-name", model_name)
    assert good.code == 0, good.stderr
    # What a deploy killed by SIGKILL during readiness leaves: v2 registered and challenger,
    # its server recorded as the candidate and still running.
    mlflow.register_model(f"runs:/{log_torch_model(seed=2)}/model", model_name)
    client.set_registered_model_alias(model_name, "challenger", "2")
    target_state = local_deployer.state(model_name)
    left = _sleeper(tmp_path / "left.log")
    target_state["candidate"] = _entry(left, "2", tmp_path)
    state_file = local_deployer.state_dir / model_name / "state.json"
    state_file.write_text(json.dumps(target_state))

    status = local_deployer("status", "--model-name", model_name)

    assert status.code == 0, status.stderr
    assert (status.xcom["champion"], status.xcom["serving"]) == ("1", "1")
    assert status.xcom["challenger"] is None
    assert client.get_registered_model(model_name).aliases == {"champion": "1"}
    assert not processes.alive(left)
    assert local_deployer.state(model_name)["candidate"] is None
    tags = client.get_model_version(model_name, "2").tags
    assert (tags["failed_step"], tags["failed_command"]) == ("interrupted", "deploy")
    assert "failed_step" not in client.get_model_version(model_name, "1").tags


def test_a_deploy_killed_after_the_switch_gives_the_endpoint_back_to_the_champion(
    local_deployer: LocalDeployer, model_name: str, tmp_path: Path
) -> None:
    good = local_deployer("deploy", "--run-id", log_torch_model(seed=1), "--model-name", model_name)
    assert good.code == 0, good.stderr
    # Killed between the switch and the promotion: the state names the new server as serving
    # and the champion's as retiring, but champion never moved.
    target_state = local_deployer.state(model_name)
    champion_server = target_state["server"]
    left = _sleeper(tmp_path / "left.log")
    target_state["retiring"], target_state["server"] = champion_server, _entry(left, "2", tmp_path)
    state_file = local_deployer.state_dir / model_name / "state.json"
    state_file.write_text(json.dumps(target_state))

    status = local_deployer("status", "--model-name", model_name)

    assert status.code == 0, status.stderr
    assert (status.xcom["champion"], status.xcom["serving"]) == ("1", "1")
    state = local_deployer.state(model_name)
    assert state["server"] == champion_server and "retiring" not in state
    assert not processes.alive(left)
    assert processes.alive(champion_server["pid"])


def _history(client: MlflowClient, name: str) -> list[str]:
    """The versions a run of rollbacks would visit, champion first; stops at a repeat."""
    version: str | None = client.get_registered_model(name).aliases["champion"]
    seen: list[str] = []
    while version and version not in seen:
        seen.append(version)
        version = client.get_model_version(name, version).tags.get("previous_champion")
    return [*seen, version] if version else seen


def test_redeploying_an_older_version_never_makes_the_rollback_history_loop(
    local_deployer: LocalDeployer, model_name: str
) -> None:
    client = MlflowClient()
    runs = [log_torch_model(seed=seed) for seed in (1, 2, 3)]
    for run_id in runs:
        deployed = local_deployer("deploy", "--run-id", run_id, "--model-name", model_name)
        assert deployed.code == 0, deployed.stderr
    assert _history(client, model_name) == ["3", "2", "1"]

    again = local_deployer("deploy", "--run-id", runs[0], "--model-name", model_name)

    assert again.code == 0, again.stderr
    assert (again.xcom["version"], again.xcom["previous_version"]) == ("1", "3")
    # v1 appears once, as the newest: the history used to read 1, 3, 2, 1, 3, ...
    assert _history(client, model_name) == ["1", "3", "2"]
    for expected in ("3", "2"):
        rolled = local_deployer("rollback", "--model-name", model_name)
        assert rolled.code == 0, rolled.stderr
        assert rolled.xcom["version"] == expected
    last = local_deployer("rollback", "--model-name", model_name)
    assert last.code == 1
    assert last.stderr.startswith("deployer rollback: failed at previous: ")
    assert (
        requests.get(f"{again.xcom['endpoint']}/version", timeout=5).json()["model_version"] == "2"
    )


class _ReadCountingClient(MlflowClient):
    """The real client, keeping which versions were read: walking the history reads each."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get_model_version(self, name: str, version: str) -> ModelVersion:
        self.reads.append(str(version))
        return super().get_model_version(name, version)


def test_the_history_is_walked_only_for_a_version_that_was_champion_before(
    mlflow_uri: str, model_name: str
) -> None:
    client = _ReadCountingClient()
    client.create_registered_model(model_name)
    for _ in range(4):
        client.create_model_version(model_name, source="s3://models/churn")
    # What three deploys leave (v3 champion, rolling back to v2, then v1), and v4 registered by
    # a deploy that failed at readiness.
    for number, before in (("1", None), ("2", "1"), ("3", "2")):
        client.set_model_version_tag(model_name, number, DEPLOYED_AT_TAG, "2026-12-01T00:00:00")
        if before:
            client.set_model_version_tag(model_name, number, PREVIOUS_CHAMPION_TAG, before)
    client.set_registered_model_alias(model_name, CHAMPION, "3")
    client.set_model_version_tag(model_name, "4", FAILED_STEP_TAG, "readiness")
    registry = Registry(client)
    never_champion = client.get_model_version(model_name, "4")
    client.reads.clear()

    registry.unlink_from_history(model_name, never_champion, "3")
    registry.promote(model_name, never_champion, "3", {PREVIOUS_CHAMPION_TAG: "3"})

    assert client.reads == []
    assert _history(client, model_name) == ["4", "3", "2", "1"]
    assert FAILED_STEP_TAG not in client.get_model_version(model_name, "4").tags
    champion_before = client.get_model_version(model_name, "1")
    client.reads.clear()

    registry.unlink_from_history(model_name, champion_before, "4")

    assert client.reads == ["4", "3", "2"]
    assert _history(client, model_name) == ["4", "3", "2"]


def test_a_failed_version_is_tagged_with_the_step_that_failed(
    local_deployer: LocalDeployer, model_name: str, tmp_path: Path
) -> None:
    client = MlflowClient()
    good = local_deployer("deploy", "--run-id", log_torch_model(), "--model-name", model_name)
    assert good.code == 0, good.stderr

    failed = local_deployer(
        "deploy", "--run-id", log_code_model(ONE_ROW_MODEL, tmp_path), "--model-name", model_name
    )

    assert failed.code == 1
    assert failed.stderr.startswith("deployer deploy: failed at readiness: ")
    tags = client.get_model_version(model_name, "2").tags
    assert (tags["failed_step"], tags["failed_command"]) == ("readiness", "deploy")
    assert "expected 3 predictions (one per input row), got 1" in tags["failed_reason"]
    assert "failed_step" not in client.get_model_version(model_name, "1").tags
    assert client.get_registered_model(model_name).aliases == {"champion": "1"}
