"""The platform on one machine, driven as its users drive it: runs triggered through Airflow's
REST API and carried out by the real scheduler, executor, triggerer and DAG processor on
PostgreSQL; what they left read from MLflow, the model server and the API.

In file order, on one model:
1. a training run triggered before its data lands: the partition sensor defers to the
   triggerer, resumes when the file lands, and the run succeeds;
2. MLflow holds one run per sweep combination and `champion` is the best of them;
3. the model server the run deployed answers /invocations;
4. a second run on the same data trains again but skips deployment;
5. a bad day (a partition that breaks the data contract) fails at validation and changes
   neither champion nor endpoint;
6. a deploy of a model that cannot answer (the DAG's deploy pod, run as the local runtime runs
   it) is rolled back while a client polls the endpoint, and not one of its requests fails;
7. the drift monitor, on a drifted day, triggers the training DAG through the scheduler;
8. the UI answers, the API wants a login, the airflow CLI sees the platform's DAGs.

These are the kind suite's scenarios (tests/e2e), with its target-independent checks
(tests.e2e.scenarios). Where kind looks at the nodes pods were bound to, the local target
checks the pod specs the runtime built, checked against the pool catalog and kept per task
instance under <local dir>/platform/pods/.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from ml_platform.local.airflow_client import AirflowClient, task_label
from ml_platform.local.partitions import daily_partition_dir, generate_partition
from ml_platform.local.stack import Layout, airflow_environment, load_state
from ml_platform.settings import platform_config
from tests.e2e.scenarios import (
    assert_deploy_skipped,
    assert_failed_at_validation,
    assert_no_failed_request,
    break_contract,
    failure_report,
    log_failing_model,
    training_runs,
)
from tests.e2e.serving import POLL_INTERVAL_S, POLL_REQUEST_TIMEOUT_S, POLLER_SCRIPT, poll_records
from tests.local_platform.conftest import LocalPlatform

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

log = logging.getLogger("e2e-local")

DAGS = Path(__file__).resolve().parents[2] / "dags"
TRAINING = "ml_training_pipeline"
MONITOR = "ml_drift_monitor"
MODEL = "churn-e2e-local"
DAY = date(2026, 11, 2)
DRIFT_DAY = date(2026, 11, 3)
BAD_DAY = date(2026, 11, 1)
ROWS = 2000
# A small sweep: two combinations, a few epochs; the bar is low on purpose (the test is
# about the platform, not the model).
SWEEP = {
    "learning_rates": [0.003, 0.01],
    "batch_sizes": [128],
    "hidden_sizes": ["32"],
    "optimizers": ["adam"],
    "dropouts": [0.1],
    "epochs": 3,
    "metric": "roc_auc",
    "min_metric": 0.55,
    "min_improvement": 0.005,  # the same data again trains no better model: no deploy
}
AXES = ("learning_rates", "batch_sizes", "hidden_sizes", "optimizers", "dropouts")
COMBINATIONS = len(list(product(*(SWEEP[axis] for axis in AXES))))
PARSE_TIMEOUT_S = 180
DEFER_TIMEOUT_S = 180
RUN_TIMEOUT_S = 900
MONITOR_TIMEOUT_S = 420
SCHEDULED_TIMEOUT_S = 180
FAILED_RUN_TIMEOUT_S = 600
DEPLOY_TIMEOUT_S = 120  # the deployer's readiness timeout for the failing deploy
DEPLOY_WAIT_S = 2 * DEPLOY_TIMEOUT_S + 120  # readiness, then the restore's
POLL_WARMUP_S = 60
POLL_WARMUP_ANSWERS = 10
POLL_AFTER_S = 5  # the poller goes on this long after the failed deploy ended


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _ti(client: AirflowClient, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return next(t for t in client.task_instances(dag_id, run_id) if t["task_id"] == task_id)


def unpause_for_test(client: AirflowClient, dag_id: str) -> None:
    """Unpause the DAG and fail the one catch-up run the scheduler then creates (the latest
    interval of a daily DAG, waiting for today's data): it would hold the DAG's only active
    run slot."""
    client.wait_for_dag(dag_id, PARSE_TIMEOUT_S)
    client.unpause(dag_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        scheduled = [r for r in client.dag_runs(dag_id) if r["run_type"] == "scheduled"]
        if scheduled:
            for run in scheduled:
                client.set_run_state(dag_id, run["dag_run_id"], "failed", "not part of the test")
            return
        time.sleep(1)
    log.info("%s: no catch-up run was created", dag_id)


@pytest.fixture(scope="module")
def training_run(platform: LocalPlatform) -> dict[str, Any]:
    """A training run triggered through the REST API before its partition exists."""
    client = platform.airflow
    unpause_for_test(client, TRAINING)
    started = time.monotonic()
    run = client.trigger(TRAINING, {"model_name": MODEL, **SWEEP}, logical_date=_midnight(DAY))
    run_id = run["dag_run_id"]

    # The sensor finds no file, defers, and the triggerer takes its trigger.
    def handed_to_triggerer() -> bool:
        ti = _ti(client, TRAINING, run_id, "wait_for_data")
        return ti["state"] == "deferred" and bool((ti.get("trigger") or {}).get("triggerer_id"))

    client.wait_until("wait_for_data deferred to the triggerer", handed_to_triggerer,
                      DEFER_TIMEOUT_S)  # fmt: skip
    deferred = _ti(client, TRAINING, run_id, "wait_for_data")
    log.info("wait_for_data deferred after %.0fs", time.monotonic() - started)
    generate_partition(platform.local_dir, DAY, drift=0.0, rows=ROWS)
    landed = time.monotonic()
    state = client.wait_for_run(TRAINING, run_id, RUN_TIMEOUT_S)
    log.info("training run %s in %.0fs (%.0fs after the data landed)", state,
             time.monotonic() - started, time.monotonic() - landed)  # fmt: skip
    return {
        **finished_run(client, run_id, RUN_TIMEOUT_S),
        "run_id": run_id,
        "state": state,
        "deferred_ti": deferred,
        "task_states": client.task_states(TRAINING, run_id),
        "summary": client.xcom(TRAINING, run_id, "notify"),
        "best": client.xcom(TRAINING, run_id, "select_best"),
    }


def finished_run(client: AirflowClient, run_id: str, timeout_s: float) -> dict[str, Any]:
    """Wait for a training run's end; its state, task states and each task's last log."""
    state = client.wait_for_run(TRAINING, run_id, timeout_s)
    instances = client.task_instances(TRAINING, run_id)
    logs = {
        task_label(ti): client.task_log(
            TRAINING, run_id, ti["task_id"], ti["try_number"], ti["map_index"]
        )  # fmt: skip
        for ti in instances
        if ti["try_number"]
    }
    tasks = {task_label(ti): ti["state"] for ti in instances}
    return {"run_id": run_id, "state": state, "tasks": tasks, "logs": logs,
            "instances": instances}  # fmt: skip


def _report(run: dict[str, Any]) -> str:
    return failure_report(run["run_id"], run["state"], run["tasks"], run["logs"])


def assert_pods_checked_for_their_pools(platform: LocalPlatform, run: dict[str, Any]) -> None:
    """What stands in for kind's look at the nodes: every container task that ran had its pod
    built and checked, a pod asking for a GPU was placed on the GPU pool (required node
    affinity on each of its labels), every other pod on a pool without GPUs; the train tasks
    asked for a GPU."""
    folder = platform.local_dir / "platform" / "pods" / TRAINING / run["run_id"]
    records = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    pools = {pool.name: pool for pool in platform_config().pools}
    problems = []
    for record in records:
        where = f"pod of {record['task_id']}[{record['map_index']}] ({record['gpus']} GPU)"
        pool = pools[record["pool"]]
        if bool(record["gpus"]) != pool.has_gpus:
            problems.append(f"{where} placed on pool {pool.name}")
        if record["task_id"].startswith("train") and not record["gpus"]:
            problems.append(f"{where}: a train task's pod asks for no GPU")
        affinity = record["pod"]["spec"].get("affinity") or {}
        node = (affinity.get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        terms = (node or {}).get("nodeSelectorTerms", [])
        required = {(e["key"], v) for t in terms for e in t.get("matchExpressions", [])
                    for v in e.get("values", [])}  # fmt: skip
        missing = set(pool.labels.items()) - required
        if missing:
            problems.append(f"{where}: no required affinity on pool {pool.name}'s {missing}")
    ran = {
        task_label(ti)
        for ti in run["instances"]
        if ti["state"] in ("success", "failed")
        and "Pod" in str(ti.get("operator_name") or ti.get("operator") or "")
    }
    recorded = {r["task_id"] if r["map_index"] < 0 else f"{r['task_id']}[{r['map_index']}]"
                for r in records}  # fmt: skip
    problems += [f"task {label} ran but no pod of it was kept" for label in sorted(ran - recorded)]
    assert ran, f"no container task ran: {run['tasks']}"
    assert not problems, "\n".join(problems)


def _mlflow(platform: LocalPlatform) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=platform.mlflow_url, registry_uri=platform.mlflow_url)


def test_training_run_waits_in_the_triggerer_then_succeeds(training_run: dict[str, Any]) -> None:
    assert training_run["state"] == "success", training_run["task_states"]
    trigger = training_run["deferred_ti"]["trigger"]
    assert trigger["classpath"].endswith("FileTrigger")
    states = training_run["task_states"]
    assert states["wait_for_data"] == "success"
    assert [states[f"train[{i}]"] for i in range(COMBINATIONS)] == ["success"] * COMBINATIONS
    assert states["deploy"] == "success"
    assert states["skip_deploy"] == "skipped"


def test_one_mlflow_run_per_combination_and_the_best_is_champion(
    platform: LocalPlatform, training_run: dict[str, Any]
) -> None:
    client = _mlflow(platform)
    experiment = client.get_experiment_by_name(MODEL)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == COMBINATIONS
    assert sorted(float(r.data.params["learning_rate"]) for r in runs) == sorted(
        SWEEP["learning_rates"]
    )
    best = max(runs, key=lambda r: r.data.metrics["val_roc_auc"])
    assert training_run["best"]["run_id"] == best.info.run_id
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == best.info.run_id
    assert training_run["summary"]["deployed"]["version"] == champion.version


def test_the_deployed_endpoint_answers(
    platform: LocalPlatform, training_run: dict[str, Any]
) -> None:
    endpoint = training_run["summary"]["deployed"]["endpoint"]
    partition = daily_partition_dir(platform.local_dir, DAY)
    rows = pd.read_parquet(next(partition.glob("*.parquet"))).head(3)
    features = rows.drop(columns=["customer_id", "churned"])
    response = requests.post(
        f"{endpoint}/invocations",
        json={"dataframe_split": features.to_dict(orient="split")},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 3


def test_every_pod_was_checked_for_its_pool(
    platform: LocalPlatform, training_run: dict[str, Any]
) -> None:
    assert training_run["state"] == "success", _report(training_run)
    assert_pods_checked_for_their_pools(platform, training_run)


def _champion(platform: LocalPlatform) -> str:
    return _mlflow(platform).get_model_version_by_alias(MODEL, "champion").version


def _served_version(endpoint: str) -> str:
    answer = requests.get(f"{endpoint}/version", timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["model_version"])


def test_second_run_on_the_same_data_skips_deployment(
    platform: LocalPlatform, training_run: dict[str, Any]
) -> None:
    assert training_run["state"] == "success", _report(training_run)
    client = platform.airflow
    endpoint = training_run["summary"]["deployed"]["endpoint"]
    before = (_champion(platform), _served_version(endpoint))
    # The same day (the same data), one second later: logical dates are unique per DAG.
    logical = _midnight(DAY) + timedelta(seconds=1)
    run_id = client.trigger(TRAINING, {"model_name": MODEL, **SWEEP}, logical_date=logical)[
        "dag_run_id"
    ]
    run = finished_run(client, run_id, RUN_TIMEOUT_S)
    assert run["state"] == "success", _report(run)
    assert_deploy_skipped(run["tasks"])
    assert len(training_runs(_mlflow(platform), MODEL, run_id)) == COMBINATIONS
    assert (_champion(platform), _served_version(endpoint)) == before
    assert_pods_checked_for_their_pools(platform, run)


def test_bad_day_fails_at_validation_and_changes_nothing(
    platform: LocalPlatform, training_run: dict[str, Any]
) -> None:
    assert training_run["state"] == "success", _report(training_run)
    client = platform.airflow
    endpoint = training_run["summary"]["deployed"]["endpoint"]
    before = (_champion(platform), _served_version(endpoint))
    # The day's data, broken in place before the run is triggered.
    generate_partition(platform.local_dir, BAD_DAY, drift=0.0, rows=ROWS)
    files = list(daily_partition_dir(platform.local_dir, BAD_DAY).glob("*.parquet"))
    assert files, "generate wrote no parquet file"
    for path in files:
        break_contract(pd.read_parquet(path)).to_parquet(path, index=False)
    run_id = client.trigger(TRAINING, {"model_name": MODEL, **SWEEP},
                            logical_date=_midnight(BAD_DAY))["dag_run_id"]  # fmt: skip
    run = finished_run(client, run_id, FAILED_RUN_TIMEOUT_S)
    assert run["state"] == "failed", _report(run)
    assert_failed_at_validation(run["tasks"], run["logs"])
    assert (_champion(platform), _served_version(endpoint)) == before
    assert_pods_checked_for_their_pools(platform, run)


def _deploy_pod(platform: LocalPlatform, env: dict[str, str], run_id: str) -> dict[str, Any]:
    """The training DAG's deploy pod for another run id (tests.e2e.serving.deploy_pod), built
    in a process with the platform's environment: Airflow reads its settings at import."""
    out = platform.local_dir / "failing-deploy-pod.json"
    code = (
        "import json, sys; from pathlib import Path; from tests.e2e.serving import deploy_pod; "
        "Path(sys.argv[6]).write_text(json.dumps(deploy_pod(*sys.argv[1:4], "
        "int(sys.argv[4]), sys.argv[5])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "e2e-failing-deploy", run_id, MODEL, str(DEPLOY_TIMEOUT_S),
         str(DAGS), str(out)],
        env={**env, "PYTHONPATH": os.pathsep.join([str(DAGS), str(DAGS.parent)])},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def _complete_records(path: Path) -> list[dict[str, Any]]:
    """The poller's records; a last line cut by its stop is left out."""
    text = path.read_text() if path.exists() else ""
    return poll_records(text if text.endswith("\n") else text.rsplit("\n", 1)[0])


def test_failed_deploy_rolls_back_without_a_failed_request(
    platform: LocalPlatform, training_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from deployer.smoke import smoke_request

    assert training_run["state"] == "success", _report(training_run)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", platform.mlflow_url)
    mlflow.set_tracking_uri(platform.mlflow_url)
    client = _mlflow(platform)
    endpoint = training_run["summary"]["deployed"]["endpoint"]
    version_before = _champion(platform)
    failing_run = log_failing_model(client, MODEL, version_before)
    request = smoke_request(f"models:/{MODEL}/{version_before}")
    layout = Layout(platform.local_dir)
    env = airflow_environment(layout, load_state(layout))
    pod = _deploy_pod(platform, env, failing_run)
    (container,) = [c for c in pod["spec"]["containers"] if c.get("args", [""])[0] == "deploy"]
    # As the local runtime runs a pod: its command (or the image's local stand-in), the
    # platform's environment plus the container's literal env.
    command = container.get("command") or [str(Path(sys.executable).with_name("deployer"))]
    deploy_env = {**env, **{e["name"]: e["value"] for e in container["env"] if "value" in e}}

    poll_file = platform.local_dir / "poller.log"
    poll_env = {
        **os.environ,
        "POLL_URL": f"{endpoint}/invocations",
        "POLL_PAYLOAD": json.dumps(request.payload),
        "POLL_SECONDS": str(POLL_WARMUP_S + DEPLOY_WAIT_S + POLL_AFTER_S + 60),
        "POLL_INTERVAL_S": str(POLL_INTERVAL_S),
        "POLL_REQUEST_TIMEOUT_S": str(POLL_REQUEST_TIMEOUT_S),
    }
    with open(poll_file, "w") as out:
        poller = subprocess.Popen([sys.executable, "-c", POLLER_SCRIPT], env=poll_env, stdout=out,
                                  stderr=subprocess.STDOUT)  # fmt: skip
    try:
        platform.airflow.wait_until(
            f"{POLL_WARMUP_ANSWERS} answers from the champion",
            lambda: (
                sum(r["status"] == 200 for r in _complete_records(poll_file)) >= POLL_WARMUP_ANSWERS
            ),
            POLL_WARMUP_S,
            poll_s=0.5,
        )
        log.info("deploying the failing model (run %s) with the DAG's deploy pod", failing_run)
        started = time.time()
        deploy = subprocess.run(command + container["args"], env=deploy_env,
                                capture_output=True, text=True, timeout=DEPLOY_WAIT_S,
                                check=False)  # fmt: skip
        ended = time.time()
        log.info("the failing deploy ended (exit %d); polling %ss more", deploy.returncode,
                 POLL_AFTER_S)  # fmt: skip
        time.sleep(POLL_AFTER_S)
    finally:
        poller.terminate()
        poller.wait(timeout=30)
    output = deploy.stdout + deploy.stderr
    (platform.local_dir / "failing-deploy.log").write_text(output)

    # The deploy really started the failing version and failed on it (readiness or smoke) ...
    assert deploy.returncode != 0, output[-3000:]
    assert "deployer deploy: failed at" in output, output[-3000:]
    versions = client.search_model_versions(f"name = '{MODEL}' and run_id = '{failing_run}'")
    assert len(versions) == 1, versions
    # ... and everything is back: champion, aliases, the endpoint's answers.
    assert _champion(platform) == version_before
    assert "challenger" not in client.get_registered_model(MODEL).aliases
    assert _served_version(endpoint) == version_before
    assert_no_failed_request(
        _complete_records(poll_file), started, ended, request.rows, str(poll_file)
    )


def test_drift_monitor_triggers_training_through_the_scheduler(
    platform: LocalPlatform, training_run: dict[str, Any]
) -> None:
    client = platform.airflow
    generate_partition(platform.local_dir, DRIFT_DAY, drift=0.6, rows=ROWS)
    unpause_for_test(client, MONITOR)
    conf = {"model_name": MODEL, "min_metric": 0.5}
    run_id = client.trigger(MONITOR, conf, logical_date=_midnight(DRIFT_DAY))["dag_run_id"]
    state = client.wait_for_run(MONITOR, run_id, MONITOR_TIMEOUT_S)
    assert state == "success", client.task_states(MONITOR, run_id)
    report = client.xcom(MONITOR, run_id, "check_drift")
    assert report["should_retrain"] is True, report
    assert client.task_states(MONITOR, run_id)["trigger_training"] == "success"

    # The run the operator asked for exists, and the real scheduler takes it on.
    triggered: dict[str, Any] = {}

    def scheduled() -> bool:
        runs = [r for r in client.dag_runs(TRAINING) if r["dag_run_id"].startswith("drift__")]
        if not runs:
            return False
        triggered.update(runs[0])
        states = client.task_states(TRAINING, runs[0]["dag_run_id"]).values()
        return runs[0]["state"] in ("running", "success") and any(s for s in states)

    client.wait_until("the triggered training run scheduled", scheduled, SCHEDULED_TIMEOUT_S)
    assert triggered["dag_run_id"].startswith(f"drift__{DRIFT_DAY.isoformat()}__")
    assert triggered["conf"] == {"model_name": MODEL}
    assert triggered["logical_date"].startswith(DRIFT_DAY.isoformat())
    # Its full sweep is not part of this test: stop it.
    client.set_run_state(TRAINING, triggered["dag_run_id"], "failed", "stopped by the test")


def test_the_ui_the_cli_and_auth(platform: LocalPlatform) -> None:
    client = platform.airflow
    page = requests.get(f"{client.base_url}/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    # Auth is on: no token, or a wrong password, gets nothing.
    assert requests.get(f"{client.base_url}/api/v2/dags", timeout=30).status_code == 401
    wrong = requests.post(
        f"{client.base_url}/auth/token",
        json={"username": client.username, "password": "not-the-password"},
        timeout=30,
    )
    assert wrong.status_code == 401
    # The airflow CLI, pointed at the platform's database by the stack.
    listed = subprocess.run(
        [sys.executable, "-m", "ml_platform.local.stack", "--local-dir", str(platform.local_dir),
         "airflow", "dags", "list", "-o", "plain"],
        capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "PYTHONPATH": str(DAGS)},
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    listed_ids = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert {TRAINING, MONITOR} <= listed_ids, listed.stdout[-2000:]
