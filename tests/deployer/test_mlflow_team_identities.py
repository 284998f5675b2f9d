"""Team identities on a real MLflow server with its basic-auth app on, as clusters run it.

The users Job's script (infra/ml_infra/mlflow_users_script.py) makes each team's login and
each model's serving login; with default_permission NO_PERMISSIONS a team owns what it
creates and cannot read or change another team's runs or models; the deployer, as the team,
grants a model's serving login READ on that model, which it can then load through MLflow's
artifact proxy, changing nothing and reading no other model, not even its own team's.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from deployer_testkit import ONE_ROW_MODEL, log_code_model
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from deployer.errors import StepFailed
from deployer.registry import Registry
from ml_platform.local.mlflow_server import BasicAuth, MlflowServer, local_mlflow_server

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "ml_infra" / "mlflow_users_script.py"
ADMIN = "mlflow-admin"
# Team A's two models' serving logins, as ml_infra.model_identities names them.
SERVE_ONE, SERVE_TWO = "serve-a-one", "serve-a-two"
TEAMS = ("team-a", "team-b", SERVE_ONE, SERVE_TWO)


@pytest.fixture(scope="module")
def admin_password() -> str:
    return secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def auth_server(
    tmp_path_factory: pytest.TempPathFactory, admin_password: str
) -> Iterator[MlflowServer]:
    auth = BasicAuth(ADMIN, admin_password)
    with local_mlflow_server(tmp_path_factory.mktemp("mlflow-auth"), auth=auth) as server:
        yield server


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    return {user: secrets.token_urlsafe(16) for user in TEAMS}


def _run_script(
    server: MlflowServer, admin_password: str, users_file: Path
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_TRACKING_USERNAME": ADMIN,
        "MLFLOW_TRACKING_PASSWORD": admin_password,
        "MLFLOW_USERS_FILE": str(users_file),
        "MLFLOW_USERS_WAIT_S": "30",
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def users(
    auth_server: MlflowServer, admin_password: str, passwords: dict[str, str], tmp_path_factory
) -> dict[str, str]:
    users_file = tmp_path_factory.mktemp("users") / "users.json"
    users_file.write_text(json.dumps({"users": passwords}))
    first = _run_script(auth_server, admin_password, users_file)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"mlflow login {u}: created" for u in TEAMS]
    again = _run_script(auth_server, admin_password, users_file)  # idempotent
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"mlflow login {u}: password set" for u in TEAMS]
    for secret_value in (*passwords.values(), admin_password):
        assert secret_value not in first.stdout + first.stderr + again.stdout
    return passwords


@pytest.fixture
def as_user(auth_server: MlflowServer, users: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    # MLflow keeps the tracking URI and the active experiment process-wide (and in the
    # environment): restored after the test, or later tests would create runs in this
    # server's experiments on their own server.
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    # set_experiment sets MLFLOW_EXPERIMENT_ID too: recorded as unset (setenv records what
    # was there; delenv of an absent variable records nothing), so teardown removes it.
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", auth_server.url)
    mlflow.set_tracking_uri(auth_server.url)

    def switch(user: str) -> MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", users[user])
        return MlflowClient(auth_server.url)

    return switch


def _denied(call, *args, **kwargs) -> str:
    with pytest.raises(MlflowException) as raised:
        call(*args, **kwargs)
    assert raised.value.error_code == "PERMISSION_DENIED", raised.value
    return str(raised.value)


def _team_a_registers(as_user, tmp_path: Path) -> tuple[str, str]:
    """Team A's experiment, run and registered model (created by team A's login)."""
    client = as_user("team-a")
    mlflow.set_experiment(f"teams/a/{uuid.uuid4().hex[:8]}")
    run_id = log_code_model(ONE_ROW_MODEL, tmp_path)
    name = f"a-model-{uuid.uuid4().hex[:6]}"
    registry = Registry(client)  # as team A's deploy step registers it
    registry.create_owned(name, "a")
    registry.find_or_register(name, registry.run_model(run_id, "model"))
    return name, run_id


@pytest.fixture
def team_a_model(as_user, tmp_path: Path) -> tuple[str, str]:
    return _team_a_registers(as_user, tmp_path)


@pytest.fixture
def team_a_other_model(as_user, tmp_path: Path) -> tuple[str, str]:
    other = tmp_path / "other"
    other.mkdir()
    return _team_a_registers(as_user, other)


def test_the_users_script_refuses_a_bad_file_in_one_line(
    auth_server: MlflowServer, admin_password: str, tmp_path: Path
):
    users_file = tmp_path / "users.json"
    users_file.write_text(json.dumps({"users": {"team-x": ""}}))
    result = _run_script(auth_server, admin_password, users_file)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"mlflow-users: {users_file}: users must map each login to a non-empty password"
    )


def test_a_team_cannot_touch_another_teams_runs_or_models(as_user, team_a_model):
    name, run_id = team_a_model
    b = as_user("team-b")
    _denied(b.get_registered_model, name)
    _denied(b.get_run, run_id)
    _denied(b.create_model_version, name, f"runs:/{run_id}/model", run_id=run_id)
    _denied(b.set_registered_model_alias, name, "champion", "1")
    experiment_id = as_user("team-a").get_run(run_id).info.experiment_id
    b = as_user("team-b")
    _denied(b.create_run, experiment_id)
    # The deployer of team B stops at `authority`, before it registers anything.
    with pytest.raises(StepFailed) as raised:
        Registry(b).check_owner(name, "b")
    assert raised.value.step == "authority"
    # Team A itself still does all of it.
    a = as_user("team-a")
    a.set_registered_model_alias(name, "champion", "1")
    assert a.get_registered_model(name).aliases == {"champion": "1"}


def test_a_models_serving_login_reads_its_model_and_no_other(
    as_user, team_a_model, team_a_other_model
):
    name, run_id = team_a_model
    other, other_run_id = team_a_other_model
    serve = as_user(SERVE_ONE)
    _denied(serve.get_registered_model, name)
    a = as_user("team-a")
    registry = Registry(a)
    # Each model's deploy step grants its own model's login, as the deployer does.
    registry.grant_read(SERVE_ONE, name, registry.run_model(run_id, "model"))
    registry.grant_read(SERVE_ONE, name, registry.run_model(run_id, "model"))  # idempotent
    registry.grant_read(SERVE_TWO, other, registry.run_model(other_run_id, "model"))
    serve = as_user(SERVE_ONE)
    assert serve.get_registered_model(name).name == name
    # It loads the model as the model server does: through the artifact proxy.
    model = mlflow.pyfunc.load_model(f"models:/{name}/1")
    assert model.metadata.run_id == run_id
    _denied(serve.set_registered_model_alias, name, "champion", "1")
    _denied(serve.delete_model_version, name, "1")
    # The team's other model, served and readable by its own login, stays closed to it.
    _denied(serve.get_registered_model, other)
    _denied(serve.get_run, other_run_id)
    with pytest.raises(MlflowException):
        mlflow.pyfunc.load_model(f"models:/{other}/1")
    assert as_user(SERVE_TWO).get_registered_model(other).name == other


def test_the_deploy_step_and_the_deployer_name_the_same_variables():
    """The training DAG sets them (ml_platform), the deployer image reads them (deployer)."""
    from deployer import workflow
    from ml_platform import deployer_rules

    assert workflow.TEAM_ENV == deployer_rules.TEAM_ENV
    assert workflow.SERVING_USER_ENV == deployer_rules.SERVING_USER_ENV
