"""What a stack runs of one pod at once (ml_platform.capacity): nodes x pods per node, and the
training GPU quota; how many copies a task asks for; the training DAG's parallelism."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG, task
from kubernetes.client import models as k8s

from ml_platform.capacity import capacity, concurrency, over_capacity, parallel_pods
from ml_platform.checks.stacks import stack_documents
from ml_platform.policies import schedule_gpu_pod
from ml_platform.settings import DEFAULT_CONFIG_FILE, PlatformConfigError, parse_config

KIND = json.loads(DEFAULT_CONFIG_FILE.read_text())


def _kind(**changes: Any) -> Any:
    """The kind document with pools[1] (gpu) and limits changed."""
    document = json.loads(json.dumps(KIND))
    for key, value in changes.items():
        if key == "gpu_quota":
            document["limits"]["gpu_quota"] = value
        else:
            document["pools"][1][key] = value
    return parse_config(document)


def _gpu_pod(cpu: str = "1", memory: str = "2Gi", gpus: int = 1, config: Any = None) -> k8s.V1Pod:
    size = {"cpu": cpu, "memory": memory}
    container = k8s.V1Container(
        name="base",
        resources=k8s.V1ResourceRequirements(
            requests=size, limits={**size, "nvidia.com/gpu": str(gpus)}
        ),
    )
    pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(), spec=k8s.V1PodSpec(containers=[container]))
    schedule_gpu_pod(pod, config or parse_config(KIND))  # tolerations and affinity, as the hook
    return pod


def test_the_kind_gpu_node_holds_two_small_trials():
    held = capacity(_gpu_pod(), parse_config(KIND))
    assert held is not None
    assert held.fits == 2
    assert any("pool gpu holds 2 (1 node(s) x 2 per node)" in why for why in held.limits)
    assert any("GPU quota of 2 admits 2" in why for why in held.limits)


def test_nodes_limit_when_pods_cannot_share_one():
    held = capacity(_gpu_pod(cpu="3"), parse_config(KIND))
    assert held is not None
    assert (held.fits, held.limits) == (1, ["pool gpu holds 1 (1 node(s) x 1 per node)"])
    bigger = _kind(max_nodes=3, gpu_quota=8)
    held = capacity(_gpu_pod(cpu="3", config=bigger), bigger)
    assert held is not None
    assert held.fits == 3


def test_the_quota_limits_when_the_nodes_hold_more():
    config = _kind(max_nodes=4, gpu_quota=3)
    held = capacity(_gpu_pod(config=config), config)
    assert held is not None
    assert (held.fits, held.limits) == (3, ["the training GPU quota of 3 admits 3"])
    two_gpus = capacity(_gpu_pod(gpus=2, config=config), config)
    assert two_gpus is not None
    assert two_gpus.fits == 1  # 3 // 2


def test_a_document_without_sizes_checks_nothing():
    document = json.loads(json.dumps(KIND))
    del document["limits"]["gpu_quota"]
    for pool in document["pools"]:
        del pool["max_nodes"]
    config = parse_config(document)
    assert capacity(_gpu_pod(config=config), config) is None


@pytest.mark.parametrize(
    ("changes", "key"),
    [({"max_nodes": 0}, "pools[1].max_nodes"), ({"max_nodes": "2"}, "pools[1].max_nodes")]
    + [({"gpu_quota": -1}, "limits.gpu_quota"), ({"gpu_quota": True}, "limits.gpu_quota")],
)
def test_bad_sizes_name_their_key(changes: dict[str, Any], key: str):
    with pytest.raises(PlatformConfigError, match=re.escape(f"{key} must be an integer")):
        _kind(**changes)


def _dag(build: Any) -> DAG:
    with DAG(dag_id="capacity", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)) as dag:
        build()
    return dag


def _mapped(**partial: Any) -> Any:
    def build() -> None:
        @task
        def lists() -> list[list[str]]:
            return [["a"]]

        KubernetesPodOperator.partial(task_id="t", image="x", **partial).expand(arguments=lists())

    return _dag(build).get_task("t")


def test_concurrency_of_a_task():
    config = parse_config(KIND)
    plain = _dag(lambda: KubernetesPodOperator(task_id="t", image="x")).get_task("t")
    assert concurrency(plain.dag, plain, config).copies == 1
    unbounded = _mapped()
    # A run-time list is as long as a sweep may be; the DAG's max_active_tasks (16) ties it.
    assert concurrency(unbounded.dag, unbounded, config).copies == 16
    capped = _mapped(max_active_tis_per_dagrun=3)
    assert concurrency(capped.dag, capped, config).bound == "max_active_tis_per_dagrun=3"

    def literal() -> None:
        KubernetesPodOperator.partial(task_id="t", image="x").expand(
            arguments=[["a"], ["b"]], env_vars=[{"A": "1"}, {"A": "2"}, {"A": "3"}]
        )

    crossed = _dag(literal).get_task("t")
    assert concurrency(crossed.dag, crossed, config).copies == 6  # a cross product


def test_over_capacity_says_which_limit_and_what_fits():
    config = parse_config(KIND)
    capped = _mapped(max_active_tis_per_dagrun=4)
    message, fits = over_capacity(_gpu_pod(), concurrency(capped.dag, capped, config), config)
    assert fits == 2
    assert message.startswith("up to 4 pods at once (max_active_tis_per_dagrun=4), each 1 GPU")
    assert message.endswith("2 run at once, the rest are refused at creation by the quota")
    pending, _ = over_capacity(
        _gpu_pod(cpu="3"), concurrency(capped.dag, capped, config), _kind(gpu_quota=4)
    )
    assert pending.endswith("1 run at once, the rest wait Pending")
    two = _mapped(max_active_tis_per_dagrun=2)
    assert over_capacity(_gpu_pod(), concurrency(two.dag, two, config), config) is None


@pytest.mark.parametrize(("stack", "expected"), [("kind", 2), ("dev", 2), ("prod", 8)])
def test_default_parallelism_per_stack(stack: str, expected: int):
    """kind: 2 GPUs on one node, quota 2; dev: 2 one-GPU nodes, quota 2; prod: the 1-GPU
    pool's 8 nodes (quota 16)."""
    config = parse_config(stack_documents()[stack])
    trial = {"gpus": 1, "gpu_type": None, "cpu": "1500m", "memory": "3Gi"}
    assert parallel_pods(config, **trial, cap=16) == expected
    assert parallel_pods(config, **trial, cap=1) == 1
