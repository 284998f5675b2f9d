"""The contract between infra/, helm/ and dags/: every pod any DAG would launch runs on a stack.

For each stack the DAGs are parsed afresh with that stack's ML_PLATFORM_CONFIG (the document
the program hands Airflow), every pod is built offline, passed through the platform's
pod_mutation_hook, and checked against what the stack declares: a pool whose taints it
tolerates, whose labels it selects and whose GPUs it fits; its namespace, service account
and Secrets; the MLflow Service and the buckets it points at.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from kubernetes.client import models as k8s
from pulumi_harness import STACKS, declared, stack_values, unwrap

from ml_platform import inspection, policies
from ml_platform.pools import POOL_LABEL, check_schedulable, gpu_request
from ml_platform.settings import CONFIG_ENV, DEFAULT_CONFIG_FILE, PlatformConfig, parse_config
from tests.pod_security_profile import restricted_violations

GPU_QUOTA_KEY = "requests.nvidia.com/gpu"

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


@cache
def stack_pods(stack: str) -> list[tuple[str, str, k8s.V1Pod]]:
    """(dag_id, task_id, pod after the pod_mutation_hook), DAGs parsed with the stack's config."""
    document = json.dumps(declared(stack).outputs["platform_config"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONFIG_ENV, document)
        bag = DagBag(dag_folder=str(DAGS_FOLDER))
        assert not bag.import_errors, bag.import_errors
        pods = list(inspection.dag_pods(bag))
        for _, _, pod in pods:
            policies.pod_mutation_hook(pod)
    assert pods, "no container task found"
    return pods


def _config(stack: str) -> PlatformConfig:
    return parse_config(declared(stack).outputs["platform_config"])


def _env(pod: k8s.V1Pod) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env or [] if e.value is not None}


def _declared_names(stack: str, type_suffix: str) -> set[tuple[str | None, str]]:
    return {
        (d.inputs["metadata"].get("namespace"), d.inputs["metadata"]["name"])
        for d in declared(stack).of_type(type_suffix)
    }


def _release_values(stack: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    release = declared(stack).release(name)
    return release.inputs, unwrap(release.inputs["values"])


def test_kind_stack_document_is_the_local_default():
    """dags/ml_platform/platform.kind.json mirrors the kind stack exactly."""
    assert declared("kind").outputs["platform_config"] == json.loads(
        DEFAULT_CONFIG_FILE.read_text()
    )


@pytest.mark.parametrize("stack", STACKS)
def test_dags_were_parsed_with_the_stacks_config(stack: str):
    for dag_id, task_id, pod in stack_pods(stack):
        assert _env(pod)["ML_PLATFORM_ENVIRONMENT"] == stack, f"{dag_id}.{task_id}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_lands_on_a_pool_of_the_stack(stack: str):
    config = _config(stack)
    gpu_pods = 0
    for dag_id, task_id, pod in stack_pods(stack):
        pool = check_schedulable(pod, config)  # raises naming each pool's objection
        if gpu_request(pod):
            gpu_pods += 1
            assert pool.has_gpus, f"{dag_id}.{task_id} asks for GPUs but lands on {pool.name}"
    assert gpu_pods, "no DAG asks for a GPU: the GPU pools are not exercised"


@pytest.mark.parametrize("stack", STACKS)
def test_pools_in_the_document_are_the_pools_the_stack_labels(stack: str):
    """The catalog the DAGs schedule against is what the nodes really carry."""
    resources = declared(stack)
    if stack == "kind":
        node_labels = [d.inputs["metadata"]["labels"] for d in resources.of_type(":NodePatch")]
    elif stack == "prod":
        node_labels = [d.inputs["labels"] for d in resources.of_type(":NodeGroup")]
    else:
        node_labels = [d.inputs["nodeConfig"]["labels"] for d in resources.of_type(":NodePool")]
    for pool in _config(stack).pools:
        assert any(pool.labels.items() <= labels.items() for labels in node_labels), pool.name


def _declared_pool_sizes(stack: str) -> dict[str, int]:
    """Pool -> the most nodes the declared resources let it have."""
    resources = declared(stack)
    if stack == "kind":
        sizes: dict[str, int] = {}
        for patch in resources.of_type(":NodePatch"):
            pool = patch.inputs["metadata"]["labels"][POOL_LABEL]
            sizes[pool] = sizes.get(pool, 0) + 1
        return sizes
    if stack == "prod":
        return {
            d.inputs["labels"][POOL_LABEL]: d.inputs["scalingConfig"]["maxSize"]
            for d in resources.of_type(":NodeGroup")
        }
    return {
        d.inputs["nodeConfig"]["labels"][POOL_LABEL]: d.inputs["autoscaling"]["maxNodeCount"]
        for d in resources.of_type(":NodePool")
    }


@pytest.mark.parametrize("stack", STACKS)
def test_pool_sizes_in_the_document_are_the_declared_ones(stack: str):
    """The capacity check (MLP303) and the training DAG's parallelism count these nodes."""
    assert {p.name: p.max_nodes for p in _config(stack).pools} == _declared_pool_sizes(stack)


@pytest.mark.parametrize("stack", STACKS)
def test_namespace_service_account_and_secrets_exist(stack: str):
    namespaces = {name for _, name in _declared_names(stack, "core/v1:Namespace")}
    accounts = _declared_names(stack, "core/v1:ServiceAccount")
    secrets = _declared_names(stack, "core/v1:Secret")
    for dag_id, task_id, pod in stack_pods(stack):
        where = f"{dag_id}.{task_id}"
        namespace = pod.metadata.namespace
        assert namespace in namespaces, where
        assert (namespace, pod.spec.service_account_name) in accounts, where
        for source in pod.spec.containers[0].env_from or []:
            assert (namespace, source.secret_ref.name) in secrets, f"{where}: {source}"


@pytest.mark.parametrize("stack", STACKS)
def test_pods_use_the_mlflow_the_stack_installs(stack: str):
    inputs, values = _release_values(stack, "mlflow")
    service = f"http://{inputs['name']}.{inputs['namespace']}.svc.cluster.local"
    url = f"{service}:{int(values['service']['port'])}"
    assert int(values["service"]["containerPort"]) == int(values["service"]["port"])
    for dag_id, task_id, pod in stack_pods(stack):
        assert _env(pod)["MLFLOW_TRACKING_URI"] == url, f"{dag_id}.{task_id}"


def _provisioned_buckets(stack: str) -> set[str]:
    resources = declared(stack)
    if stack == "kind":
        _, values = _release_values("kind", "seaweedfs")
        return {b["name"] for b in values["allInOne"]["s3"]["createBuckets"]}
    if stack == "prod":
        return {d.inputs["bucket"] for d in resources.of_type("s3/bucket:Bucket")}
    return {d.inputs["name"] for d in resources.of_type("storage/bucket:Bucket")}


@pytest.mark.parametrize("stack", STACKS)
def test_pods_use_buckets_the_stack_provisions(stack: str):
    buckets = _provisioned_buckets(stack)
    assert len(buckets) == 3
    scheme = "gs://" if stack == "dev" else "s3://"  # GCS's own API on GCP, S3's elsewhere
    for dag_id, task_id, pod in stack_pods(stack):
        env = _env(pod)
        uris = [env["ML_PLATFORM_DATASETS_URI"]] + [
            arg for arg in pod.spec.containers[0].args or [] if arg.startswith(("s3://", "gs://"))
        ]
        for uri in uris:
            assert uri.startswith(scheme), f"{dag_id}.{task_id}: {uri}"
            assert uri.removeprefix(scheme).split("/")[0] in buckets, f"{dag_id}.{task_id}: {uri}"


def test_pods_on_kind_reach_the_seaweedfs_service():
    inputs, values = _release_values("kind", "seaweedfs")
    port = int(values["allInOne"]["s3"]["port"])
    endpoint = f"http://{inputs['name']}-all-in-one.{inputs['namespace']}.svc.cluster.local:{port}"
    for _, _, pod in stack_pods("kind"):
        assert _env(pod)["AWS_ENDPOINT_URL"] == endpoint


@pytest.mark.parametrize("stack", STACKS)
def test_the_partition_sensor_connection_is_defined_for_airflow(stack: str):
    _, values = _release_values(stack, "airflow")
    defined = {item["envName"] for item in values["secret"]}
    connection = _config(stack).storage["airflow_connection"]
    assert f"AIRFLOW_CONN_{connection.upper()}" in defined


def test_infra_and_the_dag_library_use_the_same_names():
    from ml_infra import conventions
    from ml_platform import pools, settings

    assert conventions.POOL_LABEL == pools.POOL_LABEL
    assert conventions.GPU_TYPE_LABEL == pools.GPU_TYPE_LABEL
    assert conventions.GPU_RESOURCE == settings.GPU_RESOURCE
    assert conventions.TAINT_EFFECTS == settings.TAINT_EFFECTS


@pytest.mark.parametrize("stack", STACKS)
def test_the_sweep_limit_comes_from_the_stack_config(stack: str):
    """training.max_sweep_combinations and gpu_quota of the stack are the DAG library's."""
    training = stack_values(stack)["ml-platform:training"]
    document = declared(stack).outputs["platform_config"]
    assert document["limits"] == {
        "max_sweep_combinations": training["max_sweep_combinations"],
        "gpu_quota": training["gpu_quota"],
    }
    assert _config(stack).max_sweep_combinations == training["max_sweep_combinations"]
    (quota,) = declared(stack).of_type(":ResourceQuota")
    assert quota.inputs["spec"]["hard"] == {GPU_QUOTA_KEY: str(_config(stack).gpu_quota)}


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_meets_the_restricted_profile_its_namespace_enforces(stack: str):
    """Each container, the XCom sidecar included, after the pod_mutation_hook."""
    for dag_id, task_id, pod in stack_pods(stack):
        assert restricted_violations(pod) == [], f"{dag_id}.{task_id}"
