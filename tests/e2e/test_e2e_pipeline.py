"""The whole platform, driven as its users drive it, on either target (tests.e2e.target):
the kind stack (`make e2e`) or the platform on this machine (`make e2e-local`).

Data goes where the DAG reads it, the training DAG is triggered through Airflow's REST API
with a small sweep, and what the run left behind is read from where it really lives: MLflow
(runs, registry, aliases), the model server, Airflow's API, and where each pod went (on kind
the node it was bound to; locally the pod spec the runtime built and checked). The tests run
in file order and build on each other (one model per session):

1. (kind) the nodes are the stack's pools (labels, taints, emulated GPUs, room for the tasks);
2. a run triggered before its data lands: the partition sensor defers to the triggerer,
   resumes when the data lands, and the run succeeds, every pod on its pool;
3. MLflow holds one run per combination and `champion` is the best of them;
4. the model server answers with that version;
5. a second run on the same data trains again but skips deployment;
6. a bad partition fails the run at validation and changes neither champion nor server;
7. a deploy whose model cannot answer is rolled back while a client polls the endpoint, and
   not one of its requests fails;
8. the drift monitor, on a drifted day, triggers the training DAG through the scheduler;
9. the UI answers, the API wants a login, the airflow CLI sees the platform's DAGs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import product
from typing import Any

import pytest
import requests

from infra.kind import kind_platform
from ml_platform.local.airflow_client import AirflowClient, task_label
from tests.e2e.kind_target import KindTarget
from tests.e2e.scenarios import (
    assert_deploy_skipped,
    assert_failed_at_validation,
    assert_no_failed_request,
    failure_report,
    log_failing_model,
    training_runs,
)
from tests.e2e.serving import ask_server
from tests.e2e.target import Run, Serving, Target, task_logs_kept

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

log = logging.getLogger("e2e")

DAG_ID = "ml_training_pipeline"
DAG_FILE = "ml_training_pipeline.py"
MONITOR = "ml_drift_monitor"
E2E_RUN_PREFIX = "e2e-"
# A small sweep: two combinations, a few epochs. min_metric is low on purpose: the test is
# about the platform, not about how good three epochs make the model.
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
CATCH_UP_WAIT_S = 30  # for the run the scheduler creates when a DAG is unpaused
MONITOR_TIMEOUT_S = 900
SCHEDULED_TIMEOUT_S = 300
WARMUP_ANSWERS = 10  # the poller's answers from the champion before the failing deploy


# --- the session's scenario ------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    model_name: str
    first_logical: datetime
    session_id: str

    @property
    def good_ds(self) -> str:
        return self.first_logical.date().isoformat()

    @property
    def second_logical(self) -> datetime:
        """One second after the first: the same `ds`, the same data."""
        return self.first_logical + timedelta(seconds=1)

    @property
    def bad_logical(self) -> datetime:
        return self.first_logical - timedelta(days=1)

    @property
    def drift_logical(self) -> datetime:
        midnight = self.first_logical.replace(hour=0, minute=0, second=0)
        return midnight - timedelta(days=2)

    @property
    def conf(self) -> dict[str, Any]:
        return {"model_name": self.model_name, **SWEEP}

    @property
    def run_prefix(self) -> str:
        return f"{E2E_RUN_PREFIX}{self.session_id}-"

    def run_id(self, what: str) -> str:
        return f"{self.run_prefix}{what}"


@pytest.fixture(scope="module")
def scenario(session_id: str) -> Scenario:
    # Logical dates are unique per DAG: the time of day makes them unique per session.
    now = datetime.now(UTC).replace(microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0)
    first = midnight + timedelta(seconds=min((now - midnight).seconds, 86_000))
    return Scenario(f"e2e-churn-{session_id}", first, session_id)


# --- helpers ----------------------------------------------------------------------------


@cache
def dag_gpu_tasks() -> dict[str, int]:
    """Container task -> the GPUs its pod asks for, from the DAG itself (platform library)."""
    from airflow.dag_processing.dagbag import DagBag

    from ml_platform import inspection

    bag = DagBag(dag_folder=str(kind_platform.DAGS_DIR))
    assert DAG_ID in bag.dags, f"{DAG_ID} does not parse on the host: {bag.import_errors}"
    return {
        task_id: sum(
            int(((c.resources and c.resources.limits) or {}).get("nvidia.com/gpu", 0))
            for c in pod.spec.containers
        )
        for dag_id, task_id, pod in inspection.dag_pods(bag)
        if dag_id == DAG_ID
    }


def clear_the_slot(airflow: AirflowClient, dag_id: str, own_prefix: str) -> None:
    """The DAG allows one active run. Unpausing it makes the scheduler start the latest
    scheduled interval, which would hold that slot for hours waiting for a partition nobody
    uploads, and an interrupted e2e session may have left a run behind: those are failed (with
    a note saying why). Anyone else's run stops the test instead of being touched."""
    for run in airflow.active_runs(dag_id):
        run_id = run["dag_run_id"]
        if run_id.startswith(own_prefix):
            continue
        if run["run_type"] != "scheduled" and not run_id.startswith(E2E_RUN_PREFIX):
            raise AssertionError(
                f"{dag_id} run {run_id} ({run['run_type']}) is active: the DAG runs one at a "
                "time; wait for it to finish or fail it, then run the e2e tests again"
            )
        log.warning("failing run %s (%s): it would block the e2e runs", run_id, run["run_type"])
        airflow.fail_run(
            dag_id,
            run_id,
            "failed by the e2e tests: the DAG runs one run at a time, and this run (a scheduled "
            "interval waiting for its partition, or an interrupted e2e session's) would hold "
            "that slot",
        )


def unpause(target: Target, dag_id: str, own_prefix: str, dag_file: str | None = None) -> None:
    """Parsed, unpaused, and the catch-up run the scheduler creates then failed."""
    airflow = target.airflow
    airflow.wait_for_dag(dag_id, target.parse_timeout_s, poll_s=5, dag_file=dag_file)
    airflow.unpause(dag_id)

    def caught_up() -> bool:
        return any(r["run_type"] == "scheduled" for r in airflow.dag_runs(dag_id))

    try:
        airflow.wait_until(f"{dag_id}'s catch-up run", caught_up, CATCH_UP_WAIT_S)
    except Exception as exc:
        log.info("%s: %s (a catch-up run may exist from before)", dag_id, exc)
    clear_the_slot(airflow, dag_id, own_prefix)


def run_dag(
    target: Target,
    scenario: Scenario,
    what: str,
    logical_date: datetime,
    timeout_s: float,
    after_trigger: Callable[[str], None] | None = None,
) -> Run:
    """Trigger one run, wait for its end while the target watches its pods, keep its task
    logs under the session's artifacts."""
    airflow, run_id = target.airflow, scenario.run_id(what)
    finished = False
    instances: list[dict[str, Any]] = []
    logs: dict[str, str] = {}
    state = "unknown"
    try:
        with target.watch(DAG_ID, run_id) as watch:

            def check() -> None:
                clear_the_slot(airflow, DAG_ID, scenario.run_prefix)
                watch.on_poll()

            airflow.trigger(DAG_ID, scenario.conf, logical_date=logical_date, run_id=run_id)
            if after_trigger is not None:
                after_trigger(run_id)
            state = airflow.wait_for_run(
                DAG_ID, run_id, timeout_s, poll_s=target.poll_s, on_poll=check
            )
        finished = True
    finally:
        try:
            instances, logs = task_logs_kept(airflow, DAG_ID, run_id, target.artifacts / run_id)
            log.info("task logs of %s: %s", run_id, target.artifacts / run_id)
        except Exception as exc:
            if finished:
                raise
            # The run's own failure is what propagates; the logs are a courtesy then.
            log.warning("could not keep the task logs of %s: %s", run_id, exc)
    return Run(
        run_id=run_id,
        state=state,
        tasks={task_label(ti): ti["state"] for ti in instances},
        logs=logs,
        instances=instances,
        placement=watch.placement(),
    )


def report(run: Run) -> str:
    return failure_report(run.run_id, run.state, run.tasks, run.logs)


def assert_pods_on_their_pools(target: Target, run: Run) -> None:
    problems = target.placement_problems(run, dag_gpu_tasks())
    assert not problems, "\n".join(problems)


def champion(target: Target, model_name: str) -> Any:
    return target.mlflow().get_model_version_by_alias(model_name, "champion")


def ask_model_server(target: Target, model_name: str, version: str) -> Any:
    """/version and a prediction from the model's endpoint, with the model's input example."""
    from deployer.smoke import smoke_request

    target.mlflow()  # MLflow's env for the artifact download
    request = smoke_request(f"models:/{model_name}/{version}")
    with target.endpoint(model_name) as url:
        answer, predictions = ask_server(url, request.payload)
    return answer, predictions, request.rows


def assert_serves(target: Target, model_name: str, version: str) -> None:
    state = target.serving(model_name)
    assert state.version == version and state.available >= 1, state
    answer, _, _ = ask_model_server(target, model_name, version)
    assert (answer["model_name"], answer["model_version"]) == (model_name, version), answer


# --- the runs (module fixtures: each test reads what one run left) ------------------------


@pytest.fixture(scope="module")
def dag_ready(target: Target, scenario: Scenario) -> None:
    unpause(target, DAG_ID, scenario.run_prefix, DAG_FILE)


@dataclass
class FirstRun:
    run: Run
    deferred: dict[str, Any]  # the sensor's task instance while it was deferred


@pytest.fixture(scope="module")
def first_run(target: Target, scenario: Scenario, dag_ready: None) -> FirstRun:
    """Triggered before its partition exists: the sensor defers, the data lands, it resumes."""
    deferred: dict[str, Any] = {}

    def land_data_once_deferred(run_id: str) -> None:
        def handed_to_triggerer() -> bool:
            found = [
                ti
                for ti in target.airflow.task_instances(DAG_ID, run_id)
                if ti["task_id"] == "wait_for_data"
            ]
            ti = found[0] if found else {}
            if ti.get("state") == "deferred" and (ti.get("trigger") or {}).get("triggerer_id"):
                deferred.update(ti)
                return True
            return False

        target.airflow.wait_until(
            "wait_for_data deferred to the triggerer", handed_to_triggerer, target.defer_timeout_s
        )
        log.info("wait_for_data deferred; the data lands now")
        target.put_partition(scenario.good_ds)

    run = run_dag(
        target,
        scenario,
        "first",
        scenario.first_logical,
        target.run_timeout_s,
        land_data_once_deferred,
    )
    return FirstRun(run, deferred)


@dataclass
class Before:
    champion: str
    serving: Serving


def _before(target: Target, scenario: Scenario) -> Before:
    model = scenario.model_name
    return Before(champion(target, model).version, target.serving(model))


@pytest.fixture(scope="module")
def second_run(target: Target, scenario: Scenario, first_run: FirstRun) -> tuple[Run, Before]:
    assert first_run.run.state == "success", report(first_run.run)
    before = _before(target, scenario)
    run = run_dag(target, scenario, "second", scenario.second_logical, target.run_timeout_s)
    return run, before


@pytest.fixture(scope="module")
def bad_run(target: Target, scenario: Scenario, first_run: FirstRun) -> tuple[Run, Before]:
    assert first_run.run.state == "success", report(first_run.run)
    target.put_bad_partition(scenario.bad_logical.date().isoformat())
    before = _before(target, scenario)
    run = run_dag(target, scenario, "bad-data", scenario.bad_logical, target.failed_run_timeout_s)
    return run, before


@pytest.fixture(scope="module", autouse=True)
def _remove_the_model_server_when_all_passed(
    request: pytest.FixtureRequest, target: Target, scenario: Scenario
) -> Iterator[None]:
    """Each session serves its own model; after a green session its server is removed (after
    a red one it stays, for a look: `kubectl` and tests/e2e/collect-logs.sh on kind)."""
    yield
    if not request.session.testsfailed:
        target.remove_model_server(scenario.model_name)


# --- the tests -------------------------------------------------------------------------


def test_nodes_are_the_stacks_pools(target: Target) -> None:
    """Pulumi labelled and tainted the workers kind created, the GPUs are advertised, and
    every node offers what its pool promises the DAG checks (node_allocatable)."""
    if not isinstance(target, KindTarget):
        pytest.skip("kind only: this target has no nodes (each run's pods are checked instead)")
    from kubernetes.utils import parse_quantity

    kind = target.kind
    by_pool = target.pool_nodes()
    expected = kind_platform.pool_nodes()
    for pool in kind.platform.pools:
        wanted = {node for node, name in expected.items() if name == pool.name}
        assert by_pool[pool.name] == wanted, f"pool {pool.name}: nodes {by_pool[pool.name]}"
        for name in wanted:
            node = kind.core.read_node(name, _request_timeout=30)
            taints = {(t.key, t.value, t.effect) for t in node.spec.taints or []}
            for taint in pool.taints:
                assert (taint.key, taint.value, taint.effect) in taints, f"{name}: {taints}"
            allocatable = node.status.allocatable or {}
            if pool.has_gpus:
                gpus = int(allocatable.get("nvidia.com/gpu", "0"))
                assert gpus == pool.gpus_per_node, f"{name} advertises {gpus} nvidia.com/gpu"
            else:
                assert not any(key == "nvidia.com/gpu" for key, _, _ in taints), name
            for resource, promised in pool.node_allocatable.items():
                offered = parse_quantity(allocatable.get(resource, "0"))
                assert offered >= parse_quantity(promised), (
                    f"{name} offers {resource}={allocatable.get(resource)} but pool "
                    f"{pool.name} promises {promised}: give the Docker host more"
                )


def test_run_waits_in_the_triggerer_then_succeeds_with_every_pod_on_its_pool(
    target: Target, first_run: FirstRun
) -> None:
    run = first_run.run
    assert run.state == "success", report(run)
    assert first_run.deferred["trigger"]["classpath"], first_run.deferred
    assert run.tasks.get("wait_for_data") == "success", run.tasks
    trained = [run.tasks.get(f"train[{i}]") for i in range(COMBINATIONS)]
    assert trained == ["success"] * COMBINATIONS, run.tasks
    assert run.tasks.get("deploy") == "success", run.tasks
    assert run.tasks.get("skip_deploy") == "skipped", run.tasks
    assert_pods_on_their_pools(target, run)


def test_mlflow_has_a_run_per_combination_and_the_best_is_champion(
    target: Target, scenario: Scenario, first_run: FirstRun
) -> None:
    run = first_run.run
    assert run.state == "success", report(run)
    runs = training_runs(target.mlflow(), scenario.model_name, run.run_id)
    assert len(runs) == COMBINATIONS, [r.info.run_id for r in runs]
    assert all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
    rates = sorted(float(r.data.params["learning_rate"]) for r in runs)
    assert rates == sorted(SWEEP["learning_rates"]), rates
    metric = f"val_{SWEEP['metric']}"
    best = max(runs, key=lambda r: r.data.metrics[metric])
    assert target.airflow.xcom(DAG_ID, run.run_id, "select_best")["run_id"] == best.info.run_id
    crowned = champion(target, scenario.model_name)
    assert crowned.run_id == best.info.run_id, (
        f"champion v{crowned.version} comes from run {crowned.run_id}; the best {metric} is "
        f"{best.info.run_id}: {[(r.info.run_id, r.data.metrics[metric]) for r in runs]}"
    )
    assert crowned.tags.get("deployed_by") == f"airflow:{DAG_ID}/{run.run_id}", crowned.tags
    summary = target.airflow.xcom(DAG_ID, run.run_id, "notify")
    assert summary["deployed"]["version"] == crowned.version, summary


def test_model_server_answers_with_the_champion(
    target: Target, scenario: Scenario, first_run: FirstRun
) -> None:
    assert first_run.run.state == "success", report(first_run.run)
    version = champion(target, scenario.model_name).version
    assert_serves(target, scenario.model_name, version)
    _, predictions, rows = ask_model_server(target, scenario.model_name, version)
    assert len(predictions) == rows, predictions
    flat = [p[0] if isinstance(p, list) else p for p in predictions]
    assert all(0.0 <= float(p) <= 1.0 for p in flat), predictions


def test_second_run_on_the_same_data_skips_deployment(
    target: Target, scenario: Scenario, second_run: tuple[Run, Before]
) -> None:
    run, before = second_run
    assert run.state == "success", report(run)
    assert_deploy_skipped(run.tasks)
    assert len(training_runs(target.mlflow(), scenario.model_name, run.run_id)) == COMBINATIONS
    assert champion(target, scenario.model_name).version == before.champion
    assert target.serving(scenario.model_name) == before.serving
    assert_pods_on_their_pools(target, run)


def test_bad_partition_fails_validation_and_changes_nothing(
    target: Target, scenario: Scenario, bad_run: tuple[Run, Before]
) -> None:
    run, before = bad_run
    assert run.state == "failed", report(run)
    assert_failed_at_validation(run.tasks, run.logs)
    assert champion(target, scenario.model_name).version == before.champion
    assert target.serving(scenario.model_name) == before.serving
    assert_serves(target, scenario.model_name, before.champion)
    assert_pods_on_their_pools(target, run)


def test_failed_deploy_rolls_back_without_a_failed_request(
    target: Target, scenario: Scenario, first_run: FirstRun
) -> None:
    from deployer.smoke import smoke_request

    assert first_run.run.state == "success", report(first_run.run)
    model = scenario.model_name
    version_before = champion(target, model).version
    client = target.mlflow()
    failing_run = log_failing_model(client, model, version_before)
    request = smoke_request(f"models:/{model}/{version_before}")
    outcome = target.failing_deploy(
        model, failing_run, request.payload, target.deploy_timeout_s, WARMUP_ANSWERS
    )

    # The deploy really rolled the failing version out and failed on it: the server runs the
    # model's own input example before it turns ready (the smoke test after a rollout is the
    # second line of defence).
    assert outcome.failed, outcome.log[-3000:]
    assert "deployer deploy: failed at" in outcome.log, outcome.log[-3000:]
    versions = client.search_model_versions(f"name = '{model}' and run_id = '{failing_run}'")
    assert len(versions) == 1, versions
    failing_version = versions[0].version
    assert failing_version in outcome.rolled_out, (
        f"v{failing_version} never rolled out: {outcome.rolled_out}"
    )

    # ... and everything is back: champion, aliases, what serves, the server's answers.
    assert champion(target, model).version == version_before
    assert "challenger" not in client.get_registered_model(model).aliases
    assert_serves(target, model, version_before)

    # A client polled the endpoint throughout: not one of its requests from the moment the
    # deploy started may have failed.
    assert_no_failed_request(
        outcome.records, outcome.started, outcome.ended, request.rows, outcome.where
    )


def test_drift_monitor_triggers_training_through_the_scheduler(
    target: Target, scenario: Scenario, first_run: FirstRun
) -> None:
    assert first_run.run.state == "success", report(first_run.run)
    airflow, day = target.airflow, scenario.drift_logical
    target.put_partition(day.date().isoformat(), drift=0.6)
    unpause(target, MONITOR, scenario.run_prefix)
    conf = {"model_name": scenario.model_name, "min_metric": 0.5}
    run_id = scenario.run_id("drift-monitor")
    airflow.trigger(MONITOR, conf, logical_date=day, run_id=run_id)
    state = airflow.wait_for_run(MONITOR, run_id, MONITOR_TIMEOUT_S, poll_s=target.poll_s)
    assert state == "success", airflow.task_states(MONITOR, run_id)
    drift = airflow.xcom(MONITOR, run_id, "check_drift")
    assert drift["should_retrain"] is True, drift
    assert airflow.task_states(MONITOR, run_id)["trigger_training"] == "success"

    # The run the operator asked for exists, and the real scheduler takes it on.
    triggered: dict[str, Any] = {}

    def scheduled() -> bool:
        runs = [r for r in airflow.dag_runs(DAG_ID) if r["dag_run_id"].startswith("drift__")]
        ours = [r for r in runs if r["conf"].get("model_name") == scenario.model_name]
        if not ours:
            return False
        triggered.update(ours[0])
        states = airflow.task_states(DAG_ID, ours[0]["dag_run_id"]).values()
        return ours[0]["state"] in ("running", "success") and any(s for s in states)

    airflow.wait_until("the triggered training run scheduled", scheduled, SCHEDULED_TIMEOUT_S)
    assert triggered["dag_run_id"].startswith(f"drift__{day.date().isoformat()}__")
    assert triggered["conf"] == {"model_name": scenario.model_name}
    assert triggered["logical_date"].startswith(day.date().isoformat())
    # Its full sweep is not part of this test: stop it.
    airflow.set_run_state(DAG_ID, triggered["dag_run_id"], "failed", "stopped by the e2e tests")


def test_the_ui_the_cli_and_auth(target: Target) -> None:
    airflow = target.airflow
    page = requests.get(f"{airflow.base_url}/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    # Auth is on: no token, or a wrong password, gets nothing.
    assert requests.get(f"{airflow.base_url}/api/v2/dags", timeout=30).status_code == 401
    wrong = requests.post(
        f"{airflow.base_url}/auth/token",
        json={"username": airflow.username, "password": "not-the-password"},
        timeout=30,
    )
    assert wrong.status_code == 401
    code, output = target.airflow_cli("dags", "list", "-o", "plain")
    assert code == 0, output[-2000:]
    listed = {line.split()[0] for line in output.splitlines() if line.strip()}
    assert {DAG_ID, MONITOR} <= listed, output[-2000:]
