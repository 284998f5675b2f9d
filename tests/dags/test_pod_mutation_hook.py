"""pod_mutation_hook makes a textbook GPU KubernetesPodOperator schedulable on a GPU pool.

The pods come from the plain provider operator. Its build_pod_request_obj already calls
airflow.settings.pod_mutation_hook, a no-op here (the test AIRFLOW_HOME has no
airflow_local_settings), so each test calls the platform's hook itself, as Airflow would.
"""

from __future__ import annotations

import copy

import pytest
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

from ml_platform.policies import pod_mutation_hook
from ml_platform.pools import NoPoolError, check_schedulable, fitting_pools, select_pool
from ml_platform.settings import GPU_RESOURCE, PlatformConfig

# The hook reads the process config; these tests use the default (kind) catalog.
pytestmark = pytest.mark.usefixtures("kind_stack")


def textbook_pod(gpus: int = 1, **kwargs) -> k8s.V1Pod:
    """A pod as the provider docs write it: GPUs as a limit, nothing about where to run."""
    limits = {GPU_RESOURCE: str(gpus)} if gpus else {"cpu": "1", "memory": "1Gi"}
    textbook_train = KubernetesPodOperator(
        task_id="textbook_train",
        image="pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        cmds=["python", "train.py"],
        container_resources=k8s.V1ResourceRequirements(limits=limits),
        **kwargs,
    )
    return textbook_train.build_pod_request_obj(dry_run=True)


def _required_terms(pod: k8s.V1Pod) -> list[k8s.V1NodeSelectorTerm]:
    required = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    return required.node_selector_terms


def test_textbook_gpu_pod_fits_no_pool_before_the_hook(platform: PlatformConfig):
    with pytest.raises(NoPoolError, match="fits no pool"):
        check_schedulable(textbook_pod(), platform)


def test_hook_puts_it_on_the_smallest_fitting_gpu_pool(platform: PlatformConfig):
    pod = textbook_pod()
    pod_mutation_hook(pod)
    pool = check_schedulable(pod, platform)
    assert pool.has_gpus
    assert pool == select_pool(platform, gpus=1)
    assert [p.name for p in fitting_pools(pod, platform)] == [pool.name]


def test_hook_is_idempotent():
    pod = textbook_pod()
    pod_mutation_hook(pod)
    once = copy.deepcopy(pod)
    pod_mutation_hook(pod)
    assert pod == once


def test_gpu_type_nobody_has_is_refused(platform: PlatformConfig):
    pod = textbook_pod(node_selector={"ml-platform/gpu-type": "no-such-gpu"})
    with pytest.raises(NoPoolError) as raised:
        pod_mutation_hook(pod)
    message = str(raised.value)
    assert "no-such-gpu" in message
    assert repr(platform.environment) in message
    assert "1 GPU(s)" in message


def test_node_selector_on_a_gpu_type_that_exists(platform: PlatformConfig):
    gpu_pool = select_pool(platform, gpus=1)
    pod = textbook_pod(node_selector={"ml-platform/gpu-type": gpu_pool.gpu_type})
    pod_mutation_hook(pod)
    assert check_schedulable(pod, platform) == gpu_pool


def test_more_gpus_than_any_node_has_is_refused(platform: PlatformConfig):
    most = max(pool.gpus_per_node for pool in platform.pools)
    with pytest.raises(NoPoolError, match=f"offers {most + 1} GPU"):
        pod_mutation_hook(textbook_pod(gpus=most + 1))


def _placement(pod: k8s.V1Pod) -> tuple:
    return pod.spec.tolerations, pod.spec.affinity, pod.spec.node_selector


def test_cpu_pod_is_left_where_it_is():
    """Only its security context is filled in (tests/dags/test_pod_security.py)."""
    pod = textbook_pod(gpus=0)
    before = copy.deepcopy(pod)
    pod_mutation_hook(pod)
    assert _placement(pod) == _placement(before)


def test_platform_gpu_pod_is_left_unchanged(pipeline_pods: dict[str, k8s.V1Pod]):
    """The factory's pods already carry tolerations, affinity and security contexts: only
    the XCom sidecar's limits, which the operator cannot set, are added."""
    pod = pipeline_pods["train"]
    before = copy.deepcopy(pod)
    pod_mutation_hook(pod)
    assert _placement(pod) == _placement(before)
    assert pod.spec.containers[0] == before.spec.containers[0]
    assert pod.spec.security_context == before.spec.security_context
    sidecar, was = pod.spec.containers[-1], before.spec.containers[-1]
    assert sidecar.security_context == was.security_context
    assert sidecar.resources.requests == was.resources.requests and sidecar.resources.limits


def test_toleration_with_another_value_gets_the_pools(platform: PlatformConfig):
    """nvidia.com/gpu=true (another cluster's convention) does not tolerate =present."""
    other = k8s.V1Toleration(key=GPU_RESOURCE, operator="Equal", value="true", effect="NoSchedule")
    pod = textbook_pod(tolerations=[other])
    pod_mutation_hook(pod)
    assert check_schedulable(pod, platform).has_gpus
    assert other in pod.spec.tolerations


def test_existing_required_affinity_gets_the_pool_expressions_merged(platform: PlatformConfig):
    avoid = k8s.V1NodeSelectorRequirement(
        key="kubernetes.io/hostname", operator="NotIn", values=["flaky-node"]
    )
    arm = k8s.V1NodeSelectorRequirement(key="kubernetes.io/arch", operator="NotIn", values=["arm"])
    affinity = k8s.V1Affinity(
        node_affinity=k8s.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(
                node_selector_terms=[
                    k8s.V1NodeSelectorTerm(match_expressions=[avoid]),
                    k8s.V1NodeSelectorTerm(match_expressions=[arm]),
                ]
            )
        )
    )
    pod = textbook_pod(affinity=affinity)
    pod_mutation_hook(pod)

    gpu_pool = check_schedulable(pod, platform)
    assert gpu_pool.has_gpus
    pool_keys = set(gpu_pool.labels)
    first, second = _required_terms(pod)  # still two ORed terms, each narrowed to the pool
    assert avoid in first.match_expressions
    assert arm in second.match_expressions
    for term in (first, second):
        pinned = {e.key: e.values for e in term.match_expressions if e.operator == "In"}
        assert pinned == {key: [gpu_pool.labels[key]] for key in pool_keys}


def test_node_selector_on_a_type_the_pool_stands_in_for(platform: PlatformConfig):
    """kind's emulated GPUs stand in for the production type: the selector is pointed at the
    type its nodes carry, so the pod schedules there instead of matching no node."""
    gpu_pool = select_pool(platform, gpus=1)
    (production_type, *_) = gpu_pool.stands_in_for
    pod = textbook_pod(node_selector={"ml-platform/gpu-type": production_type})
    with pytest.raises(NoPoolError):
        check_schedulable(pod, platform)
    pod_mutation_hook(pod)
    assert pod.spec.node_selector == {"ml-platform/gpu-type": gpu_pool.gpu_type}
    assert check_schedulable(pod, platform) == gpu_pool
