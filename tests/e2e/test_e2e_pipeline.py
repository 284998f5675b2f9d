"""The whole platform on kind, driven as its users drive it.

Data goes into the in-cluster object store, the training DAG is triggered through Airflow's
REST API with a small sweep, and what the run left behind is read from where it really lives:
the Kubernetes API (which node each pod was bound to, recorded by a watch while the run went
on, since container tasks delete their pods), MLflow (runs, registry, aliases), the model
server's Deployment and the server itself. The tests run in file order and build on each
other (one model per session):

1. the nodes are the stack's pools (labels, taints, emulated GPUs, room for the tasks);
2. a first run succeeds, every GPU pod ran on the GPU pool and every CPU pod off it;
3. MLflow holds one run per combination and `champion` is the best of them;
4. the model server in the serving namespace answers with that version;
5. a second run on the same data trains again but skips deployment;
6. a bad partition fails the run at validation and changes neither champion nor server;
7. a deploy whose smoke test fails is rolled back while a client inside the cluster polls the
   Service, and not one of its requests fails.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import product
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from kubernetes.utils import parse_quantity

from infra.kind import kind_platform
from ml_platform.local.airflow_client import AirflowClient, task_label
from tests.e2e.pod_recorder import PodRecord, PodRecorder
from tests.e2e.port_forward import PortForward
from tests.e2e.scenarios import (
    assert_deploy_skipped,
    assert_failed_at_validation,
    assert_no_failed_request,
    break_contract,
    failure_report,
    log_failing_model,
)
from tests.e2e.scenarios import (
    training_runs as runs_of,
)
from tests.e2e.serving import (
    ask_server,
    deploy_pod,
    poll_records,
    poller_pod,
    serving_state,
    wait_for_log,
    wait_for_pod_end,
)
from tests.e2e.stack import Kind, Mlflow, Store

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

log = logging.getLogger("e2e")

DAG_ID = "ml_training_pipeline"
DAG_FILE = "ml_training_pipeline.py"
E2E_RUN_PREFIX = "e2e-"
# A small sweep: two combinations, a few epochs. min_metric is low on purpose: the test is
# about the platform, not about how good five epochs make the model.
SWEEP = {
    "learning_rates": [0.003, 0.01],
    "batch_sizes": [128],
    "hidden_sizes": ["32"],
    "optimizers": ["adam"],
    "dropouts": [0.1],
    "epochs": 5,
    "metric": "roc_auc",
    "min_metric": 0.55,
    "min_improvement": 0.005,
}
AXES = ("learning_rates", "batch_sizes", "hidden_sizes", "optimizers", "dropouts")
COMBINATIONS = len(list(product(*(SWEEP[axis] for axis in AXES))))
ROWS = 4000
DAG_PARSE_TIMEOUT_S = 600
RUN_TIMEOUT_S = 2400
FAILED_RUN_TIMEOUT_S = 900
GENERATE_TIMEOUT_S = 300
DEPLOY_TIMEOUT_S = 300  # the deployer's readiness timeout for the failing deploy
POLL_WARMUP_S = 180  # until the poller has answers from the champion
POLL_WARMUP_ANSWERS = 10
POLL_AFTER_S = 10  # the poller keeps going this long after the failed deploy ended


# --- the session's scenario ------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    model_name: str
    good_ds: str
    bad_ds: str
    first_logical: datetime
    second_logical: datetime
    bad_logical: datetime
    session_id: str

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
    # Logical dates are unique per DAG: the time of day makes them unique per session; the
    # second run is one second after the first, on the same day (the same `ds`, the same data).
    now = datetime.now(UTC).replace(microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0)
    first = midnight + timedelta(seconds=min((now - midnight).seconds, 86_000))
    bad = first - timedelta(days=1)
    return Scenario(
        model_name=f"e2e-churn-{session_id}",
        good_ds=first.date().isoformat(),
        bad_ds=bad.date().isoformat(),
        first_logical=first,
        second_logical=first + timedelta(seconds=1),
        bad_logical=bad,
        session_id=session_id,
    )


# --- helpers ----------------------------------------------------------------------------


@cache
def _dag_bag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(kind_platform.DAGS_DIR))
    assert DAG_ID in bag.dags, f"{DAG_ID} does not parse on the host: {bag.import_errors}"
    return bag


def dag_gpu_tasks() -> dict[str, int]:
    """Container task -> the GPUs its pod asks for, from the DAG itself (platform library)."""
    from ml_platform import inspection

    return {
        task_id: sum(
            int(((c.resources and c.resources.limits) or {}).get("nvidia.com/gpu", 0))
            for c in pod.spec.containers
        )
        for dag_id, task_id, pod in inspection.dag_pods(_dag_bag())
        if dag_id == DAG_ID
    }


def pool_nodes(kind: Kind) -> dict[str, set[str]]:
    """Pool -> the nodes that carry the pool's labels, as the cluster says."""
    nodes = {}
    for pool in kind.platform.pools:
        selector = ",".join(f"{key}={value}" for key, value in pool.labels.items())
        found = kind.core.list_node(label_selector=selector, _request_timeout=30).items
        nodes[pool.name] = {node.metadata.name for node in found}
    return nodes


def gpu_nodes(kind: Kind) -> set[str]:
    by_pool = pool_nodes(kind)
    return {node for pool in kind.platform.pools if pool.has_gpus for node in by_pool[pool.name]}


def _safe_label(value: str) -> str:
    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

    return make_safe_label_value(value)


@dataclass
class Run:
    run_id: str
    state: str
    tasks: dict[str, str]  # task label (task_id or task_id[map_index]) -> state
    pods: dict[str, PodRecord]
    gaps: int
    watch_errors: list[str]
    logs: dict[str, str]  # task label -> its last try's log

    def failure_report(self) -> str:
        return failure_report(self.run_id, self.state, self.tasks, self.logs)


def _clear_the_slot(airflow: AirflowClient, own_prefix: str) -> None:
    """The DAG allows one active run. Unpausing it makes the scheduler start the latest
    scheduled interval, which would hold that slot for hours waiting for a partition nobody
    uploads, and an interrupted e2e session may have left a run behind: those are failed (with
    a note saying why). Anyone else's run stops the test instead of being touched."""
    for run in airflow.active_runs(DAG_ID):
        run_id = run["dag_run_id"]
        if run_id.startswith(own_prefix):
            continue
        if run["run_type"] != "scheduled" and not run_id.startswith(E2E_RUN_PREFIX):
            raise AssertionError(
                f"{DAG_ID} run {run['dag_run_id']} ({run['run_type']}) is active: the DAG "
                "runs one at a time, wait for it to finish or fail it, then run make e2e again"
            )
        log.warning("failing run %s (%s): it would block the e2e runs", run_id, run["run_type"])
        airflow.fail_run(
            DAG_ID,
            run_id,
            "failed by the kind e2e tests: the DAG runs one run at a time, and this run (a "
            "scheduled interval waiting for its partition, or an interrupted e2e session's) "
            "would hold that slot",
        )


def run_dag(
    kind: Kind,
    airflow: AirflowClient,
    artifacts: Path,
    run_id: str,
    logical_date: datetime,
    conf: dict[str, Any],
    timeout_s: float,
    own_prefix: str,
) -> Run:
    """Trigger one run, wait for its end while recording its pods, keep its task logs."""
    assert _safe_label(run_id) == run_id, f"run id {run_id!r} is not a valid label value"
    selector = f"dag_id={_safe_label(DAG_ID)},run_id={run_id}"
    finished = False
    try:
        with PodRecorder(kind.core, kind.namespace("training"), selector) as recorder:

            def check() -> None:
                _clear_the_slot(airflow, own_prefix)
                problems = recorder.image_problems()
                if problems:
                    raise AssertionError(
                        f"pods cannot get their image (run `make images`): {problems}"
                    )

            airflow.trigger(DAG_ID, conf, logical_date=logical_date, run_id=run_id)
            state = airflow.wait_for_run(DAG_ID, run_id, timeout_s, poll_s=15, on_poll=check)
        finished = True
    finally:
        try:
            instances, logs = _keep_task_logs(airflow, artifacts, run_id)
        except Exception as exc:
            if finished:
                raise
            # The run's own failure is what propagates; the logs are a courtesy then.
            log.warning("could not keep the task logs of %s: %s", run_id, exc)
    return Run(
        run_id=run_id,
        state=state,
        tasks={task_label(ti): ti["state"] for ti in instances},
        pods=dict(recorder.pods),
        gaps=recorder.gaps,
        watch_errors=list(recorder.errors),
        logs=logs,
    )


def _keep_task_logs(
    airflow: AirflowClient, artifacts: Path, run_id: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every try's log of the run's task instances, written under the artifacts folder."""
    instances = airflow.task_instances(DAG_ID, run_id)
    logs = {}
    folder = artifacts / run_id
    folder.mkdir(parents=True, exist_ok=True)
    for ti in instances:
        for attempt in range(1, (ti["try_number"] or 0) + 1):
            text = airflow.task_log(DAG_ID, run_id, ti["task_id"], attempt, ti["map_index"])
            (folder / f"{task_label(ti)}.try{attempt}.log").write_text(text)
            logs[task_label(ti)] = text
    log.info("task logs of %s: %s", run_id, folder)
    return instances, logs


def assert_pods_on_their_pools(kind: Kind, run: Run) -> None:
    """Every pod that asked for a GPU ran on the GPU pool, every other pod off it, and every
    container task that ran had its pod recorded (so the check cannot pass on an empty record)."""
    assert run.gaps == 0, f"the pod watch expired {run.gaps} time(s): a pod may be missing"
    gpu = gpu_nodes(kind)
    assert gpu, "no node carries the GPU pool's labels"
    expected_gpus = dag_gpu_tasks()
    problems = []
    for pod in run.pods.values():
        where = f"pod {pod.name} ({pod.task_id}, {pod.gpus} GPU)"
        if pod.node is None:
            problems.append(f"{where} was never bound to a node")
        elif pod.gpus and pod.node not in gpu:
            problems.append(f"{where} ran on {pod.node}, not on the GPU pool {sorted(gpu)}")
        elif not pod.gpus and pod.node in gpu:
            problems.append(f"{where} ran on GPU node {pod.node}")
        if pod.task_id in expected_gpus and pod.gpus != expected_gpus[pod.task_id]:
            problems.append(f"{where}: the DAG's pod asks for {expected_gpus[pod.task_id]} GPU")
    ran = {
        label
        for label, state in run.tasks.items()
        if state in ("success", "failed") and label.split("[")[0] in expected_gpus
    }
    recorded = {
        pod.task_id
        if "map_index" not in pod.labels
        else f"{pod.task_id}[{pod.labels['map_index']}]"
        for pod in run.pods.values()
    }
    problems += [f"task {label} ran but no pod of it was seen" for label in sorted(ran - recorded)]
    assert not problems, "\n".join(problems) + f"\nwatch errors: {run.watch_errors}"


def upload_partition(kind: Kind, store: Store, ds: str) -> str:
    """A day of data, written into the store by the trainer's own `generate`."""
    uri = f"{kind.platform.datasets_uri}/daily/{ds}"
    log.info("generating %d rows for %s into %s", ROWS, ds, uri)
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "generate", "--date", ds, "--output-uri", uri]
        + ["--rows", str(ROWS)],
        env={**os.environ, **store.env()},
        capture_output=True,
        text=True,
        timeout=GENERATE_TIMEOUT_S,
    )
    assert done.returncode == 0, f"trainer generate failed:\n{done.stderr}"
    return uri


def upload_bad_partition(kind: Kind, store: Store, ds: str, scratch: Path) -> str:
    """A partition whose `age` column breaks the schema's range, put with boto3."""
    import pandas as pd

    local = scratch / ds
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "generate", "--date", ds, "--output-uri", str(local)]
        + ["--rows", str(ROWS)],
        capture_output=True,
        text=True,
        timeout=GENERATE_TIMEOUT_S,
    )
    assert done.returncode == 0, f"trainer generate failed:\n{done.stderr}"
    frame = break_contract(pd.read_parquet(local / "data.parquet"))
    body = io.BytesIO()
    frame.to_parquet(body, index=False)
    parsed = urlparse(kind.platform.datasets_uri)
    bucket, root = parsed.netloc, parsed.path.strip("/")
    prefix = "/".join(part for part in (root, "daily", ds) if part) + "/"
    s3 = store.client()
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        if item["Key"].endswith(".parquet"):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
    s3.put_object(Bucket=bucket, Key=prefix + "data.parquet", Body=body.getvalue())
    log.info("uploaded a bad partition to s3://%s/%s", bucket, prefix)
    return f"s3://{bucket}/{prefix}"


def champion(cluster_mlflow: Mlflow, model_name: str) -> Any:
    return cluster_mlflow.client().get_model_version_by_alias(model_name, "champion")


def _serving(kind: Kind, model_name: str) -> Any:
    from deployer.manifests import VERSION_LABEL, resource_name

    return serving_state(
        kind.apps, kind.namespace("serving"), resource_name(model_name), VERSION_LABEL
    )


def ask_model_server(kind: Kind, cluster_mlflow: Mlflow, model_name: str, version: str) -> Any:
    """/version and a prediction from the model's Service, with the model's input example."""
    from deployer.manifests import SERVICE_PORT, resource_name
    from deployer.smoke import smoke_request

    cluster_mlflow.client()  # MLflow's env for the artifact download
    request = smoke_request(f"models:/{model_name}/{version}")
    forward = PortForward(
        kind.context, kind.namespace("serving"), f"svc/{resource_name(model_name)}", SERVICE_PORT
    )
    with forward:
        answer, predictions = ask_server(forward.url, request.payload)
    return answer, predictions, request.rows


def training_runs(cluster_mlflow: Mlflow, model_name: str, run_id: str) -> list[Any]:
    """The MLflow runs a DAG run's train tasks left (tries a retry superseded left out)."""
    return runs_of(cluster_mlflow.client(), model_name, run_id)


# --- the runs (module fixtures: each test reads what one run left) ------------------------


@pytest.fixture(scope="module")
def dag_ready(airflow: AirflowClient, scenario: Scenario) -> None:
    airflow.wait_for_dag(DAG_ID, DAG_PARSE_TIMEOUT_S, poll_s=10, dag_file=DAG_FILE)
    airflow.unpause(DAG_ID)
    _clear_the_slot(airflow, scenario.run_prefix)


@pytest.fixture(scope="module")
def first_run(
    kind: Kind, airflow: AirflowClient, store: Store, artifacts: Path, scenario: Scenario, dag_ready
) -> Run:
    upload_partition(kind, store, scenario.good_ds)
    return run_dag(
        kind,
        airflow,
        artifacts,
        scenario.run_id("first"),
        scenario.first_logical,
        scenario.conf,
        RUN_TIMEOUT_S,
        scenario.run_prefix,
    )


@dataclass
class Before:
    champion: str
    serving: Any


@pytest.fixture(scope="module")
def second_run(
    kind: Kind,
    airflow: AirflowClient,
    cluster_mlflow: Mlflow,
    artifacts: Path,
    scenario: Scenario,
    first_run: Run,
) -> tuple[Run, Before]:
    assert first_run.state == "success", first_run.failure_report()
    before = Before(
        champion(cluster_mlflow, scenario.model_name).version, _serving(kind, scenario.model_name)
    )
    run = run_dag(
        kind,
        airflow,
        artifacts,
        scenario.run_id("second"),
        scenario.second_logical,
        scenario.conf,
        RUN_TIMEOUT_S,
        scenario.run_prefix,
    )
    return run, before


@pytest.fixture(scope="module")
def bad_run(
    kind: Kind,
    airflow: AirflowClient,
    cluster_mlflow: Mlflow,
    store: Store,
    artifacts: Path,
    scenario: Scenario,
    first_run: Run,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Run, Before]:
    assert first_run.state == "success", first_run.failure_report()
    upload_bad_partition(kind, store, scenario.bad_ds, tmp_path_factory.mktemp("bad-data"))
    before = Before(
        champion(cluster_mlflow, scenario.model_name).version, _serving(kind, scenario.model_name)
    )
    run = run_dag(
        kind,
        airflow,
        artifacts,
        scenario.run_id("bad-data"),
        scenario.bad_logical,
        scenario.conf,
        FAILED_RUN_TIMEOUT_S,
        scenario.run_prefix,
    )
    return run, before


@pytest.fixture(scope="module", autouse=True)
def _remove_the_model_server_when_all_passed(
    request: pytest.FixtureRequest, kind: Kind, scenario: Scenario
) -> Iterator[None]:
    """Each session serves its own model; after a green session its server is removed (after
    a red one it stays, for `kubectl` and tests/e2e/collect-logs.sh)."""
    yield
    if request.session.testsfailed:
        return
    from deployer.manifests import resource_name

    name, namespace = resource_name(scenario.model_name), kind.namespace("serving")
    log.info("removing the session's model server %s/%s", namespace, name)
    for delete in (kind.apps.delete_namespaced_deployment, kind.core.delete_namespaced_service):
        try:
            delete(name, namespace, _request_timeout=30)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise


# --- the tests -------------------------------------------------------------------------


def test_nodes_are_the_stacks_pools(kind: Kind):
    """Pulumi labelled and tainted the workers kind created, the GPUs are advertised, and
    every node offers what its pool promises the DAG checks (node_allocatable)."""
    by_pool = pool_nodes(kind)
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


def test_training_run_succeeds_with_every_pod_on_its_pool(kind: Kind, first_run: Run):
    assert first_run.state == "success", first_run.failure_report()
    assert first_run.tasks.get("deploy") == "success", first_run.tasks
    trained = {pod.labels.get("map_index") for pod in first_run.pods.values() if pod.gpus}
    assert trained >= {str(i) for i in range(COMBINATIONS)}, f"GPU pods seen: {trained}"
    assert_pods_on_their_pools(kind, first_run)


def test_mlflow_has_a_run_per_combination_and_the_best_is_champion(
    cluster_mlflow: Mlflow, scenario: Scenario, first_run: Run
):
    assert first_run.state == "success", first_run.failure_report()
    runs = training_runs(cluster_mlflow, scenario.model_name, first_run.run_id)
    assert len(runs) == COMBINATIONS, [r.info.run_id for r in runs]
    assert all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
    rates = sorted(float(r.data.params["learning_rate"]) for r in runs)
    assert rates == sorted(SWEEP["learning_rates"]), rates
    metric = f"val_{SWEEP['metric']}"
    best = max(runs, key=lambda r: r.data.metrics[metric])
    crowned = champion(cluster_mlflow, scenario.model_name)
    assert crowned.run_id == best.info.run_id, (
        f"champion v{crowned.version} comes from run {crowned.run_id}; the best {metric} is "
        f"{best.info.run_id}: {[(r.info.run_id, r.data.metrics[metric]) for r in runs]}"
    )
    assert crowned.tags.get("deployed_by") == f"airflow:{DAG_ID}/{first_run.run_id}", crowned.tags


def test_model_server_answers_with_the_champion(
    kind: Kind, cluster_mlflow: Mlflow, scenario: Scenario, first_run: Run
):
    assert first_run.state == "success", first_run.failure_report()
    version = champion(cluster_mlflow, scenario.model_name).version
    state = _serving(kind, scenario.model_name)
    assert state.version == version and state.available >= 1, state
    answer, predictions, rows = ask_model_server(kind, cluster_mlflow, scenario.model_name, version)
    assert (answer["model_name"], answer["model_version"]) == (scenario.model_name, version)
    assert len(predictions) == rows, predictions
    flat = [p[0] if isinstance(p, list) else p for p in predictions]
    assert all(0.0 <= float(p) <= 1.0 for p in flat), predictions


def test_second_run_on_the_same_data_skips_deployment(
    kind: Kind, cluster_mlflow: Mlflow, scenario: Scenario, second_run: tuple[Run, Before]
):
    run, before = second_run
    assert run.state == "success", run.failure_report()
    assert_deploy_skipped(run.tasks)
    assert len(training_runs(cluster_mlflow, scenario.model_name, run.run_id)) == COMBINATIONS
    assert champion(cluster_mlflow, scenario.model_name).version == before.champion
    assert _serving(kind, scenario.model_name) == before.serving
    assert not any(pod.task_id == "deploy" for pod in run.pods.values()), run.pods
    assert_pods_on_their_pools(kind, run)


def test_bad_partition_fails_validation_and_changes_nothing(
    kind: Kind, cluster_mlflow: Mlflow, scenario: Scenario, bad_run: tuple[Run, Before]
):
    run, before = bad_run
    assert run.state == "failed", run.failure_report()
    assert_failed_at_validation(run.tasks, run.logs)
    assert champion(cluster_mlflow, scenario.model_name).version == before.champion
    assert _serving(kind, scenario.model_name) == before.serving
    answer, _, _ = ask_model_server(kind, cluster_mlflow, scenario.model_name, before.champion)
    assert answer["model_version"] == before.champion, answer
    assert_pods_on_their_pools(kind, run)


def test_failed_smoke_test_rolls_back_without_a_failed_request(
    kind: Kind,
    cluster_mlflow: Mlflow,
    scenario: Scenario,
    artifacts: Path,
    first_run: Run,
):
    from deployer.manifests import SERVICE_PORT, VERSION_LABEL, resource_name, selector_labels
    from deployer.smoke import smoke_request

    assert first_run.state == "success", first_run.failure_report()
    model = scenario.model_name
    version_before = champion(cluster_mlflow, model).version
    failing_run = log_failing_model(cluster_mlflow.client(), model, version_before)
    request = smoke_request(f"models:/{model}/{version_before}")
    training, serving = kind.namespace("training"), kind.namespace("serving")
    service_url = f"http://{resource_name(model)}.{serving}.svc.cluster.local:{SERVICE_PORT}"
    poller_name = f"e2e-poller-{scenario.session_id}"
    deployer_name = f"e2e-failing-deploy-{scenario.session_id}"
    images = kind.platform.images
    deploy_wait_s = 2 * DEPLOY_TIMEOUT_S + 300  # readiness, then the restore's readiness
    poll_seconds = POLL_WARMUP_S + deploy_wait_s + POLL_AFTER_S + 120
    kind.core.create_namespaced_pod(
        training,
        poller_pod(
            poller_name,
            training,
            images.ref("deployer"),
            images.pull_policy,
            kind.platform.service_accounts["training"],
            f"{service_url}/invocations",
            request.payload,
            poll_seconds,
        ),
        _request_timeout=30,
    )
    deployer_log = poller_log = ""
    try:
        wait_for_log(
            kind.core,
            training,
            poller_name,
            lambda text: sum(r["status"] == 200 for r in poll_records(text)) >= POLL_WARMUP_ANSWERS,
            POLL_WARMUP_S,
            f"{POLL_WARMUP_ANSWERS} answers from the champion",
        )
        log.info("deploying the failing model (run %s) with the DAG's deploy pod", failing_run)
        started = time.time()
        kind.core.create_namespaced_pod(
            training,
            deploy_pod(
                deployer_name, failing_run, model, DEPLOY_TIMEOUT_S, str(kind_platform.DAGS_DIR)
            ),
            _request_timeout=30,
        )
        phase = wait_for_pod_end(kind.core, training, deployer_name, deploy_wait_s)
        ended = time.time()
        log.info("the failing deploy ended (%s); polling %ss more", phase, POLL_AFTER_S)
        time.sleep(POLL_AFTER_S)
    finally:
        logs = {}
        for name, file in ((deployer_name, "failing-deploy.log"), (poller_name, "poller.log")):
            try:
                logs[name] = kind.core.read_namespaced_pod_log(name, training, _request_timeout=30)
                (artifacts / file).write_text(logs[name])
            except Exception as exc:
                log.warning("no log of pod %s: %s", name, exc)
            try:
                kind.core.delete_namespaced_pod(name, training, _request_timeout=30)
            except Exception as exc:
                if getattr(exc, "status", None) != 404:
                    raise
        deployer_log = logs.get(deployer_name, "")
        poller_log = logs.get(poller_name, "")

    # The deploy really rolled the failing version out and failed on the model's own input
    # example: the server runs it before it turns Ready, so the rollout stalls at readiness
    # (the network smoke test after a rollout is the second line of defence).
    assert phase == "Failed", deployer_log
    assert "deployer deploy: failed at readiness" in deployer_log, deployer_log
    client = cluster_mlflow.client()
    versions = client.search_model_versions(f"name = '{model}' and run_id = '{failing_run}'")
    assert len(versions) == 1, versions
    failing_version = versions[0].version
    selector = ",".join(f"{key}={value}" for key, value in selector_labels(model).items())
    replica_sets = kind.apps.list_namespaced_replica_set(
        serving, label_selector=selector, _request_timeout=30
    ).items
    rolled_out = {rs.spec.template.metadata.labels.get(VERSION_LABEL) for rs in replica_sets}
    assert failing_version in rolled_out, f"v{failing_version} never rolled out: {rolled_out}"

    # ... and everything is back: champion, aliases, the Deployment, the server's answers.
    assert champion(cluster_mlflow, model).version == version_before
    assert "challenger" not in client.get_registered_model(model).aliases
    state = _serving(kind, model)
    assert state.version == version_before and state.available >= 1, state
    answer, _, _ = ask_model_server(kind, cluster_mlflow, model, version_before)
    assert answer["model_version"] == version_before, answer

    # A client polled the Service throughout: not one of its requests from the moment the
    # deploy started may have failed.
    assert_no_failed_request(
        poll_records(poller_log), started, ended, request.rows, str(artifacts / "poller.log")
    )
