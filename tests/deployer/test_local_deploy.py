"""deploy / rollback / status end to end: real MLflow registry, real model server processes."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from deployer_testkit import (
    ONE_ROW_MODEL,
    RAISING_MODEL,
    LocalDeployer,
    feature_rows,
    log_code_model,
    log_torch_model,
)
from mlflow import MlflowClient

from deployer import processes
from deployer.targets.local import stop_all_models
from ml_contract.serving import DEPLOYED_ENDPOINT_TAG

XCOM_KEYS = {"model_name", "version", "model_uri", "endpoint", "previous_version", "target"}


def serving_version(endpoint: str) -> str:
    return requests.get(f"{endpoint}/version", timeout=5).json()["model_version"]


def predict(endpoint: str, rows: int) -> list:
    frame = feature_rows(rows, seed=7)
    payload = {"dataframe_split": frame.to_dict(orient="split", index=False)}
    response = requests.post(f"{endpoint}/invocations", json=payload, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def test_deploy_registers_promotes_serves_and_is_idempotent(
    local_deployer: LocalDeployer, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = log_torch_model(auc=0.83)
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "churn_training")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__1")

    first = local_deployer("deploy", "--run-id", run_id, "--model-name", model_name)

    assert first.code == 0, first.stderr
    assert first.stderr == ""
    assert set(first.xcom) >= XCOM_KEYS
    assert first.xcom["version"] == "1"
    assert first.xcom["model_uri"] == f"models:/{model_name}/1"
    assert first.xcom["previous_version"] is None
    assert (first.xcom["target"], first.xcom["status"]) == ("local", "deployed")
    client = MlflowClient()
    assert client.get_registered_model(model_name).aliases == {"champion": "1"}
    tags = client.get_model_version(model_name, "1").tags
    assert tags["deployed_by"] == "airflow:churn_training/manual__1"
    assert tags["metric.auc"] == "0.83"
    deployed_at = datetime.fromisoformat(tags["deployed_at"])
    assert abs(datetime.now(UTC) - deployed_at) < timedelta(minutes=5)
    assert tags["source_run_id"] == run_id
    # The trainer's monitor finds the champion's endpoint under the contract's tag.
    assert tags[DEPLOYED_ENDPOINT_TAG] == first.xcom["endpoint"]
    assert "previous_champion" not in tags  # the first champion has no predecessor
    endpoint = first.xcom["endpoint"]
    assert serving_version(endpoint) == "1"
    assert len(predict(endpoint, rows=5)) == 5

    again = local_deployer("deploy", "--run-id", run_id, "--model-name", model_name)

    assert again.code == 0, again.stderr
    assert again.xcom["version"] == "1"
    assert len(client.search_model_versions(f"name = '{model_name}'")) == 1
    assert again.xcom["endpoint"] == endpoint  # the front keeps the URL across rollouts
    assert serving_version(endpoint) == "1"
    assert local_deployer.state(model_name)["server"]["version"] == "1"


def test_a_model_that_cannot_answer_never_gets_ready_and_the_previous_version_keeps_serving(
    local_deployer: LocalDeployer, model_name: str, tmp_path: Path
) -> None:
    good = local_deployer("deploy", "--run-id", log_torch_model(), "--model-name", model_name)
    assert good.code == 0, good.stderr
    endpoint = good.xcom["endpoint"]
    bad_run = log_code_model(RAISING_MODEL, tmp_path)

    failed = local_deployer.console_script(
        "deploy", "--run-id", bad_run, "--model-name", model_name, "--timeout", "90"
    )

    assert failed.code == 1
    lines = failed.stderr.splitlines()
    assert len(lines) == 1, failed.stderr
    # The server predicts its own input example before it says ready, so the bad model fails
    # at readiness (on Kubernetes: never Ready, never sent traffic), before any smoke test.
    assert lines[0].startswith("deployer deploy: failed at readiness: ")
    assert "model exploded on purpose" in lines[0]
    assert failed.xcom is None
    client = MlflowClient()
    # The bad model was registered (v2), but no alias points at it.
    assert client.get_registered_model(model_name).aliases == {"champion": "1"}
    assert serving_version(endpoint) == "1"
    assert len(predict(endpoint, rows=2)) == 2
    state = local_deployer.state(model_name)
    assert state["server"]["version"] == "1"
    assert state["candidate"] is None


def test_wrong_number_of_predictions_fails_before_ready(
    local_deployer: LocalDeployer, model_name: str, tmp_path: Path
) -> None:
    good = local_deployer("deploy", "--run-id", log_torch_model(), "--model-name", model_name)
    assert good.code == 0, good.stderr
    state_before = local_deployer.state(model_name)

    failed = local_deployer(
        "deploy", "--run-id", log_code_model(ONE_ROW_MODEL, tmp_path), "--model-name", model_name
    )

    assert failed.code == 1
    assert failed.stderr.startswith("deployer deploy: failed at readiness: ")
    assert "expected 3 predictions (one per input row), got 1" in failed.stderr
    assert MlflowClient().get_registered_model(model_name).aliases == {"champion": "1"}
    state_after = local_deployer.state(model_name)
    assert state_after["server"] == state_before["server"]
    assert processes.alive(state_after["server"]["pid"])
    assert serving_version(good.xcom["endpoint"]) == "1"


def test_rollback_restores_the_previous_champion(
    local_deployer: LocalDeployer, model_name: str
) -> None:
    for seed in (1, 2):
        deployed = local_deployer(
            "deploy", "--run-id", log_torch_model(seed=seed), "--model-name", model_name
        )
        assert deployed.code == 0, deployed.stderr
    assert deployed.xcom["previous_version"] == "1"
    assert MlflowClient().get_model_version(model_name, "2").tags["previous_champion"] == "1"
    endpoint = deployed.xcom["endpoint"]
    assert serving_version(endpoint) == "2"

    rolled = local_deployer("rollback", "--model-name", model_name)

    assert rolled.code == 0, rolled.stderr
    assert rolled.xcom["version"] == "1"
    assert rolled.xcom["rolled_back_from"] == "2"
    assert rolled.xcom["endpoint"] == endpoint
    assert MlflowClient().get_registered_model(model_name).aliases == {"champion": "1"}
    assert MlflowClient().get_model_version(model_name, "1").tags["rolled_back_from"] == "2"
    assert serving_version(endpoint) == "1"
    assert len(predict(endpoint, rows=4)) == 4

    # v1 was the first champion: there is nothing before it, and nothing may change.
    nothing = local_deployer("rollback", "--model-name", model_name)

    assert nothing.code == 1
    assert nothing.stderr.startswith("deployer rollback: failed at previous: ")
    assert nothing.stderr.count("\n") == 1
    assert MlflowClient().get_registered_model(model_name).aliases == {"champion": "1"}
    assert serving_version(endpoint) == "1"


def test_status_reports_when_alias_and_server_disagree(
    local_deployer: LocalDeployer, model_name: str
) -> None:
    for seed in (1, 2):
        deployed = local_deployer(
            "deploy", "--run-id", log_torch_model(seed=seed), "--model-name", model_name
        )
        assert deployed.code == 0, deployed.stderr

    in_sync = local_deployer("status", "--model-name", model_name)

    assert in_sync.code == 0, in_sync.stderr
    assert in_sync.xcom["in_sync"] is True
    assert (in_sync.xcom["champion"], in_sync.xcom["serving"]) == ("2", "2")

    MlflowClient().set_registered_model_alias(model_name, "champion", "1")  # by hand
    drifted = local_deployer("status", "--model-name", model_name)

    assert drifted.code == 3, drifted.stderr  # out of sync: neither success nor a failure
    assert drifted.stderr == ""
    assert drifted.xcom["in_sync"] is False
    assert drifted.xcom["status"] == "out_of_sync"
    assert (drifted.xcom["champion"], drifted.xcom["serving"]) == ("1", "2")
    assert "OUT OF SYNC" in drifted.stdout


def test_bad_input_fails_in_one_line_and_changes_nothing(
    local_deployer: LocalDeployer, model_name: str
) -> None:
    client = MlflowClient()
    no_run = local_deployer("deploy", "--run-id", "0" * 32, "--model-name", model_name)
    assert no_run.code == 1
    assert no_run.stderr == f"deployer deploy: failed at run: run {'0' * 32} not found\n"

    run_id = log_torch_model()
    no_model = local_deployer(
        "deploy", "--run-id", run_id, "--model-name", model_name, "--artifact-path", "nothing"
    )
    assert no_model.code == 1
    assert no_model.stderr == (
        f"deployer deploy: failed at model: run {run_id} has no model at artifact path 'nothing'\n"
    )
    no_example_run = log_torch_model(with_example=False)
    no_example = local_deployer("deploy", "--run-id", no_example_run, "--model-name", model_name)
    assert no_example.code == 1
    assert no_example.stderr == (
        f"deployer deploy: failed at model: runs:/{no_example_run}/model has no input example "
        "to smoke-test it with (log one)\n"
    )
    assert client.search_registered_models(f"name = '{model_name}'") == []
    assert not local_deployer.state_dir.joinpath(model_name, "state.json").exists()

    no_champion = local_deployer("rollback", "--model-name", model_name)
    assert no_champion.code == 1
    assert no_champion.stderr == (
        f"deployer rollback: failed at champion: registered model '{model_name}' not found\n"
    )

    no_namespace = local_deployer(
        "status", "--model-name", model_name, "--target", "kubernetes", "--image", "x"
    )
    assert no_namespace.code == 1
    assert no_namespace.stderr == (
        "deployer status: failed at config: "
        "the kubernetes target needs --namespace (or DEPLOYER_NAMESPACE)\n"
    )
    assert no_namespace.xcom is None


def test_sigterm_during_a_rollout_restores_and_fails_in_one_line(
    local_deployer: LocalDeployer, model_name: str
) -> None:
    good = local_deployer("deploy", "--run-id", log_torch_model(seed=1), "--model-name", model_name)
    assert good.code == 0, good.stderr
    state_file = local_deployer.state_dir / model_name / "state.json"
    process = local_deployer.start_console_script(
        "deploy", "--run-id", log_torch_model(seed=2), "--model-name", model_name
    )
    try:
        # Airflow stops the task while the new server is still loading its model.
        candidate, deadline = None, time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            candidate = json.loads(state_file.read_text()).get("candidate")
            if candidate:
                break
            time.sleep(0.1)
        assert candidate, "the second deploy never started a server"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    assert process.returncode == 1
    assert stderr.endswith(": terminated by SIGTERM\n") and stderr.count("\n") == 1, stderr
    assert stderr.startswith("deployer deploy: failed at ")
    assert not processes.alive(candidate["pid"])
    state = local_deployer.state(model_name)
    assert state["candidate"] is None and state["server"]["version"] == "1"
    assert MlflowClient().get_registered_model(model_name).aliases == {"champion": "1"}
    assert serving_version(good.xcom["endpoint"]) == "1"


def test_stop_all_models_stops_every_recorded_process(
    local_deployer: LocalDeployer, model_name: str
) -> None:
    deployed = local_deployer("deploy", "--run-id", log_torch_model(), "--model-name", model_name)
    assert deployed.code == 0, deployed.stderr
    state = local_deployer.state(model_name)
    pids = [state["server"]["pid"], state["front"]["pid"]]
    assert all(processes.alive(pid) for pid in pids)

    assert stop_all_models(local_deployer.state_dir) == [model_name]

    assert not any(processes.alive(pid) for pid in pids)


def test_a_teams_deploy_step_deploys_only_its_own_models(
    local_deployer: LocalDeployer, model_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DEPLOYER_TEAM (set by the platform's training DAG): the first deploy makes the model
    the team's; another team's deploy or rollback is refused in one line, changing nothing."""
    client = MlflowClient()
    monkeypatch.setenv("DEPLOYER_TEAM", "fraud")
    first_run = log_torch_model(auc=0.8)
    owned = local_deployer("deploy", "--run-id", first_run, "--model-name", model_name)
    assert owned.code == 0, owned.stderr
    assert client.get_registered_model(model_name).tags["ml-platform.team"] == "fraud"

    monkeypatch.setenv("DEPLOYER_TEAM", "risk")
    other_run = log_torch_model(auc=0.9, seed=1)
    refused = local_deployer("deploy", "--run-id", other_run, "--model-name", model_name)
    assert refused.code == 1
    assert refused.stderr == (
        f"deployer deploy: failed at authority: registered model '{model_name}' belongs to "
        "team 'fraud'; the deploy step of team 'risk' deploys only its own models\n"
    )
    refused_rollback = local_deployer("rollback", "--model-name", model_name)
    assert refused_rollback.code == 1
    assert "failed at authority: " in refused_rollback.stderr
    assert len(client.search_model_versions(f"name = '{model_name}'")) == 1
    assert client.get_registered_model(model_name).aliases == {"champion": "1"}
    assert serving_version(owned.xcom["endpoint"]) == "1"

    # A model nobody's deploy step registered (a person at a terminal): no team may take it.
    monkeypatch.delenv("DEPLOYER_TEAM")
    unowned_name = f"{model_name}-unowned"
    by_hand = local_deployer("deploy", "--run-id", first_run, "--model-name", unowned_name)
    assert by_hand.code == 0, by_hand.stderr
    monkeypatch.setenv("DEPLOYER_TEAM", "fraud")
    claimed = local_deployer("deploy", "--run-id", other_run, "--model-name", unowned_name)
    assert claimed.code == 1
    assert f"registered model '{unowned_name}' has no ml-platform.team tag" in claimed.stderr
    assert len(client.search_model_versions(f"name = '{unowned_name}'")) == 1
