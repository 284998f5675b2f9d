"""Airflow's GPU pools, as the program declares them (under the mocks): one per GPU node pool,
a slot per GPU the pool ever has (at most the training GPU quota), in the platform document
and in the Job that creates them."""

from __future__ import annotations

import json

import pytest
from pulumi_harness import STACKS, declared, stack_values, unwrap

from ml_platform.settings import parse_config
from tests.pod_security_profile import restricted_violations

# What each committed stack file gives: kind's GPU node holds 2; dev's 2 one-GPU nodes; prod's
# 8 one-GPU and 2 four-GPU nodes under a 16-GPU quota.
EXPECTED_SLOTS = {
    "kind": {"gpu-gpus": 2},
    "dev": {"gpu-l4-gpus": 2},
    "prod": {"gpu-l4-gpus": 8, "gpu-l4-x4-gpus": 8},
}


@pytest.mark.parametrize("stack", STACKS)
def test_every_gpu_pool_has_an_airflow_pool_of_its_gpus(stack: str):
    document = declared(stack).outputs["platform_config"]
    slots = {name: pool["slots"] for name, pool in document["airflow_pools"].items()}
    assert slots == EXPECTED_SLOTS[stack]
    quota = stack_values(stack)["ml-platform:training"]["gpu_quota"]
    for pool in document["pools"]:
        if pool["gpu"]:
            held = pool["gpu"]["count"] * pool["max_nodes"]
            assert document["airflow_pools"][pool["airflow_pool"]]["slots"] == min(held, quota)
        else:
            assert pool["airflow_pool"] is None
    # Deferrable pod tasks run their pods while deferred: those must count.
    assert all(pool["include_deferred"] for pool in document["airflow_pools"].values())


@pytest.mark.parametrize("stack", STACKS)
def test_the_dag_library_reads_the_pools(stack: str):
    config = parse_config(declared(stack).outputs["platform_config"])
    assert {p.airflow_pool for p in config.pools if p.has_gpus} == set(EXPECTED_SLOTS[stack])
    assert set(config.airflow_pools) == set(EXPECTED_SLOTS[stack])


@pytest.mark.parametrize("stack", STACKS)
def test_the_pools_job_imports_the_documents_pools_as_a_restricted_pod(stack: str):
    resources = declared(stack)
    document = resources.outputs["platform_config"]
    data = resources.named("airflow-gpu-pools", ":ConfigMap").inputs["data"]
    assert json.loads(data["pools.json"]) == document["airflow_pools"]
    job = unwrap(resources.named("airflow-gpu-pools", ":Job").inputs)
    namespace = stack_values(stack)["ml-platform:namespaces"]["airflow"]
    assert job["metadata"]["namespace"] == namespace
    pod = job["spec"]["template"]
    assert restricted_violations(pod["spec"]) == []
    container = pod["spec"]["containers"][0]
    assert container["args"] == ["airflow", "pools", "import", "/pools/pools.json"]
    airflow = stack_values(stack)["ml-platform:airflow"]["image"]
    assert container["image"] == f"{airflow['repository']}:{airflow['tag']}"
    # The database URL (with its password) comes from the Secret, never inline.
    database = next(e for e in container["env"] if e["name"].endswith("SQL_ALCHEMY_CONN"))
    assert database["valueFrom"]["secretKeyRef"]["name"] == "airflow-metadata"
    assert "value" not in database
    # A change of pools changes the pod template, so the Job runs again.
    assert (
        json.loads(pod["metadata"]["annotations"]["ml-platform/pools"])
        == (document["airflow_pools"])
    )
