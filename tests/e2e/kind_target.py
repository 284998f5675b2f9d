"""The kind target of the e2e suite: the kind stack as its users reach it.

The kubeconfig context of the kind stack, the admin credentials from the stack's outputs and
from the Secrets the pods use, `kubectl port-forward` to the Services of Airflow, MLflow, the
object store and the model servers. A watch records which node each pod of a run was bound to
(container tasks delete their pods); the failing deploy is the DAG's deploy pod, beside a
polling client pod that goes through the model's Service like any other client.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from infra.kind import kind_platform
from ml_platform.local.airflow_client import AirflowClient, task_label
from ml_platform.model_specs import PLATFORM_TEAM
from tests.e2e.pod_recorder import PodRecorder
from tests.e2e.port_forward import PortForward
from tests.e2e.scenarios import break_contract
from tests.e2e.serving import (
    deploy_pod,
    poll_records,
    poller_pod,
    serving_state,
    wait_for_log,
    wait_for_pod_end,
)
from tests.e2e.stack import Kind, Mlflow, Store
from tests.e2e.target import DeployOutcome, Run, RunWatch, Serving, Target, unrecorded_tasks

log = logging.getLogger("e2e")

ROWS = 4000
GENERATE_TIMEOUT_S = 300
POLL_WARMUP_S = 180  # until the poller has answers from the champion
POLL_AFTER_S = 10  # the poller keeps going this long after the failed deploy ended


def _safe_label(value: str) -> str:
    from airflow.providers.cncf.kubernetes.pod_generator import make_safe_label_value

    return make_safe_label_value(value)


def connect(preflight_outputs: dict[str, Any]) -> Kind:
    from kubernetes import client, config

    context = kind_platform.kube_context()
    api = config.new_client_from_config(context=context)
    return Kind(
        context=context,
        core=client.CoreV1Api(api),
        apps=client.AppsV1Api(api),
        platform=kind_platform.platform_document(),
        stack=kind_platform.stack_config(),
        services=kind_platform.services(),
        outputs=preflight_outputs,
    )


def _task_label_of(pod: Any) -> str:
    """A recorded pod's task label, as the REST API's task instances give it."""
    index = pod.labels.get("map_index")
    return task_label({"task_id": pod.task_id, "map_index": -1 if index is None else int(index)})


class _PodWatch(RunWatch):
    def __init__(self, recorder: PodRecorder) -> None:
        self.recorder = recorder

    def on_poll(self) -> None:
        problems = self.recorder.image_problems()
        if problems:
            raise AssertionError(f"pods cannot get their image (run `make images`): {problems}")

    def placement(self) -> PodRecorder:
        return self.recorder


class KindTarget(Target):
    name = "kind"
    parse_timeout_s = 600
    defer_timeout_s = 600
    run_timeout_s = 2400
    failed_run_timeout_s = 900
    deploy_timeout_s = 300
    poll_s = 15

    def __init__(self, kind: Kind, artifacts: Path, stack: ExitStack) -> None:
        self.kind = kind
        self.artifacts = artifacts
        # The forwards' URLs may change (a restarted port-forward): asked at every request.
        airflow = stack.enter_context(kind.port_forward("airflow"))
        self.airflow = AirflowClient(
            lambda: airflow.url,
            kind.outputs["airflow_admin_user"],
            kind.outputs["airflow_admin_password"],
        )
        # The admin sees every team's runs and models (the pods get their team's login only).
        self._mlflow = Mlflow(
            stack.enter_context(kind.port_forward("mlflow")),
            {
                "MLFLOW_TRACKING_USERNAME": kind.outputs["mlflow_admin_user"],
                "MLFLOW_TRACKING_PASSWORD": kind.outputs["mlflow_admin_password"],
            },
        )
        # The platform team's key: the e2e data lands in its daily/ folder.
        credentials = kind.secret("training", kind.platform.teams[PLATFORM_TEAM].storage_secret)
        self.store = Store(stack.enter_context(kind.port_forward("storage")), credentials)

    # -- MLflow and data --------------------------------------------------------------------

    def mlflow(self) -> Any:
        return self._mlflow.client()

    def _generate(self, ds: str, uri: str, drift: float, env: dict[str, str]) -> None:
        log.info("generating %d rows for %s into %s", ROWS, ds, uri)
        done = subprocess.run(
            [sys.executable, "-m", "trainer", "generate", "--date", ds, "--output-uri", uri]
            + ["--rows", str(ROWS), "--drift", str(drift)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=GENERATE_TIMEOUT_S,
        )
        assert done.returncode == 0, f"trainer generate failed:\n{done.stderr}"

    def put_partition(self, ds: str, drift: float = 0.0) -> str:
        """A day of data, written into the store by the trainer's own `generate`."""
        uri = f"{self.kind.platform.datasets_uri}/daily/{ds}"
        self._generate(ds, uri, drift, self.store.env())
        return uri

    def put_bad_partition(self, ds: str) -> str:
        """Generated here, broken, and put with boto3 over whatever the day held."""
        import pandas as pd

        local = self.artifacts / "data" / ds
        self._generate(ds, str(local), 0.0, {})
        frame = break_contract(pd.read_parquet(local / "data.parquet"))
        body = io.BytesIO()
        frame.to_parquet(body, index=False)
        parsed = urlparse(self.kind.platform.datasets_uri)
        bucket, root = parsed.netloc, parsed.path.strip("/")
        prefix = "/".join(part for part in (root, "daily", ds) if part) + "/"
        s3 = self.store.client()
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            if item["Key"].endswith(".parquet"):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.put_object(Bucket=bucket, Key=prefix + "data.parquet", Body=body.getvalue())
        log.info("uploaded a bad partition to s3://%s/%s", bucket, prefix)
        return f"s3://{bucket}/{prefix}"

    # -- pods and nodes ---------------------------------------------------------------------

    @contextmanager
    def watch(self, dag_id: str, run_id: str) -> Iterator[RunWatch]:
        assert _safe_label(run_id) == run_id, f"run id {run_id!r} is not a valid label value"
        selector = f"dag_id={_safe_label(dag_id)},run_id={run_id}"
        with PodRecorder(self.kind.core, self.kind.namespace("training"), selector) as recorder:
            yield _PodWatch(recorder)

    def pool_nodes(self) -> dict[str, set[str]]:
        """Pool -> the nodes that carry the pool's labels, as the cluster says."""
        nodes = {}
        for pool in self.kind.platform.pools:
            selector = ",".join(f"{key}={value}" for key, value in pool.labels.items())
            found = self.kind.core.list_node(label_selector=selector, _request_timeout=30).items
            nodes[pool.name] = {node.metadata.name for node in found}
        return nodes

    def placement_problems(self, run: Run, expected_gpus: dict[str, int]) -> list[str]:
        recorder: PodRecorder = run.placement
        if recorder.gaps:
            return [f"the pod watch expired {recorder.gaps} time(s): a pod may be missing"]
        by_pool = self.pool_nodes()
        gpu = {n for p in self.kind.platform.pools if p.has_gpus for n in by_pool[p.name]}
        if not gpu:
            return ["no node carries the GPU pool's labels"]
        problems = []
        for pod in recorder.pods.values():
            where = f"pod {pod.name} ({pod.task_id}, {pod.gpus} GPU)"
            if pod.node is None:
                problems.append(f"{where} was never bound to a node")
            elif pod.gpus and pod.node not in gpu:
                problems.append(f"{where} ran on {pod.node}, not on the GPU pool {sorted(gpu)}")
            elif not pod.gpus and pod.node in gpu:
                problems.append(f"{where} ran on GPU node {pod.node}")
            if pod.task_id in expected_gpus and pod.gpus != expected_gpus[pod.task_id]:
                problems.append(f"{where}: the DAG's pod asks for {expected_gpus[pod.task_id]} GPU")
        recorded = {_task_label_of(pod) for pod in recorder.pods.values()}
        problems += unrecorded_tasks(run, expected_gpus, recorded)
        if problems and recorder.errors:
            problems.append(f"watch errors: {recorder.errors}")
        return problems

    # -- serving ----------------------------------------------------------------------------

    def serving(self, model_name: str) -> Serving:
        from deployer.manifests import VERSION_LABEL, resource_name

        state = serving_state(
            self.kind.apps, self.kind.namespace("serving"), resource_name(model_name), VERSION_LABEL
        )
        return Serving(state.version, state.available, f"generation {state.generation}")

    @contextmanager
    def endpoint(self, model_name: str) -> Iterator[str]:
        from deployer.manifests import SERVICE_PORT, resource_name

        service = f"svc/{resource_name(model_name)}"
        with PortForward(
            self.kind.context, self.kind.namespace("serving"), service, SERVICE_PORT
        ) as forward:
            yield forward.url

    def failing_deploy(
        self,
        model_name: str,
        run_id: str,
        payload: dict[str, Any],
        deploy_timeout_s: int,
        warmup_answers: int,
    ) -> DeployOutcome:
        from deployer.manifests import SERVICE_PORT, VERSION_LABEL, resource_name, selector_labels

        kind, core = self.kind, self.kind.core
        training, serving = kind.namespace("training"), kind.namespace("serving")
        suffix = self.artifacts.name
        service_url = (
            f"http://{resource_name(model_name)}.{serving}.svc.cluster.local:{SERVICE_PORT}"
        )
        poller_name, deployer_name = f"e2e-poller-{suffix}", f"e2e-failing-deploy-{suffix}"
        deploy_wait_s = 2 * deploy_timeout_s + 300  # readiness, then the restore's readiness
        images = kind.platform.images
        core.create_namespaced_pod(
            training,
            poller_pod(
                poller_name,
                training,
                images.ref("deployer"),
                images.pull_policy,
                kind.platform.service_accounts["training"],
                f"{service_url}/invocations",
                payload,
                POLL_WARMUP_S + deploy_wait_s + POLL_AFTER_S + 120,
            ),
            _request_timeout=30,
        )
        logs: dict[str, str] = {}
        phase = "not started"
        started = ended = time.time()
        try:
            wait_for_log(
                core,
                training,
                poller_name,
                lambda text: sum(r["status"] == 200 for r in poll_records(text)) >= warmup_answers,
                POLL_WARMUP_S,
                f"{warmup_answers} answers from the champion",
            )
            log.info("deploying the failing model (run %s) with the DAG's deploy pod", run_id)
            started = time.time()
            core.create_namespaced_pod(
                training,
                deploy_pod(
                    deployer_name, run_id, model_name, deploy_timeout_s, str(kind_platform.DAGS_DIR)
                ),
                _request_timeout=30,
            )
            phase = wait_for_pod_end(core, training, deployer_name, deploy_wait_s)
            ended = time.time()
            log.info("the failing deploy ended (%s); polling %ss more", phase, POLL_AFTER_S)
            time.sleep(POLL_AFTER_S)
        finally:
            for name, file in ((deployer_name, "failing-deploy.log"), (poller_name, "poller.log")):
                try:
                    logs[name] = core.read_namespaced_pod_log(name, training, _request_timeout=30)
                    (self.artifacts / file).write_text(logs[name])
                except Exception as exc:
                    log.warning("no log of pod %s: %s", name, exc)
                try:
                    core.delete_namespaced_pod(name, training, _request_timeout=30)
                except Exception as exc:
                    if getattr(exc, "status", None) != 404:
                        raise
        selector = ",".join(f"{k}={v}" for k, v in selector_labels(model_name).items())
        replica_sets = kind.apps.list_namespaced_replica_set(
            serving, label_selector=selector, _request_timeout=30
        ).items
        return DeployOutcome(
            failed=phase == "Failed",
            log=logs.get(deployer_name, ""),
            rolled_out={rs.spec.template.metadata.labels.get(VERSION_LABEL) for rs in replica_sets},
            records=poll_records(logs.get(poller_name, "")),
            started=started,
            ended=ended,
            where=str(self.artifacts / "poller.log"),
        )

    def remove_model_server(self, model_name: str) -> None:
        from deployer.manifests import resource_name

        name, namespace = resource_name(model_name), self.kind.namespace("serving")
        log.info("removing the session's model server %s/%s", namespace, name)
        for delete in (
            self.kind.apps.delete_namespaced_deployment,
            self.kind.core.delete_namespaced_service,
        ):
            try:
                delete(name, namespace, _request_timeout=30)
            except Exception as exc:
                if getattr(exc, "status", None) != 404:
                    raise

    # -- Airflow ----------------------------------------------------------------------------

    def airflow_cli(self, *args: str) -> tuple[int, str]:
        """In the scheduler's pod (the admission policies bound exec in the training
        namespace only)."""
        from ml_infra.endpoints import AIRFLOW_RELEASE

        namespace = self.kind.namespace("airflow")
        command = ["kubectl", "--context", self.kind.context, "-n", namespace, "exec"]
        command += [f"deploy/{AIRFLOW_RELEASE}-scheduler", "-c", "scheduler", "--", "airflow"]
        done = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=180, check=False
        )
        return done.returncode, done.stdout + done.stderr
