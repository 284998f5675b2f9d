"""Every pod the DAGs launch meets PodSecurity `restricted`, which the training namespace
enforces: each container, Airflow's XCom sidecar included, as Airflow submits it (after the
platform's pod_mutation_hook), and a textbook KubernetesPodOperator too.
"""

from __future__ import annotations

import copy

import pytest
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
from kubernetes.client import models as k8s
from kubernetes.utils import parse_quantity

from ml_platform.policies import pod_mutation_hook
from ml_platform.settings import GPU_RESOURCE
from tests.pod_security_profile import as_document, restricted_violations

SIDECAR = PodDefaults.SIDECAR_CONTAINER_NAME


pytestmark = pytest.mark.usefixtures("kind_stack")


def _sidecar(pod: k8s.V1Pod) -> k8s.V1Container:
    (sidecar,) = [c for c in pod.spec.containers if c.name == SIDECAR]
    return sidecar


def textbook_pod() -> k8s.V1Pod:
    """A GPU pod as the provider docs write it: no security context, results through XCom."""
    size = {"cpu": "1", "memory": "2Gi"}
    textbook_train = KubernetesPodOperator(
        task_id="textbook_train",
        image="localhost/ml-platform/trainer:dev",
        arguments=["train"],
        do_xcom_push=True,
        container_resources=k8s.V1ResourceRequirements(
            requests=size, limits={**size, GPU_RESOURCE: "1"}
        ),
    )
    return textbook_train.build_pod_request_obj(dry_run=True)


@pytest.mark.usefixtures("container_task")
def test_every_container_meets_restricted_as_airflow_submits_it(container_pod: k8s.V1Pod):
    assert restricted_violations(container_pod) == []


@pytest.mark.usefixtures("platform_container_task")
def test_factory_pods_meet_restricted_before_the_hook(offline_container_pod: k8s.V1Pod):
    """What check-dags builds is already compliant: the factory sets the sidecar's context."""
    assert [c.name for c in offline_container_pod.spec.containers][-1] == SIDECAR
    assert restricted_violations(offline_container_pod) == []


@pytest.mark.usefixtures("platform_container_task")
def test_the_xcom_sidecar_is_read_only_and_small(container_pod: k8s.V1Pod):
    sidecar = as_document(_sidecar(container_pod))
    context = sidecar["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    resources = sidecar["resources"]
    for kind in ("requests", "limits"):
        assert parse_quantity(resources[kind]["cpu"]) <= parse_quantity("100m"), kind
        assert parse_quantity(resources[kind]["memory"]) <= parse_quantity("64Mi"), kind


def test_a_textbook_operator_meets_restricted_after_the_hook():
    pod = textbook_pod()
    before = restricted_violations(pod)
    # The check can fail: the provider's pod runs its sidecar as root, unconfined.
    assert "container airflow-xcom-sidecar: allowPrivilegeEscalation is not false" in before
    assert "container base: runAsNonRoot is not true (container or pod level)" in before
    pod_mutation_hook(pod)
    assert restricted_violations(pod) == []
    assert _sidecar(pod).resources.limits


def test_a_value_the_dag_sets_is_kept_and_still_refused():
    """The hook fills gaps; it does not overrule a DAG (admission then says why)."""
    pod = textbook_pod()
    pod.spec.containers[0].security_context = k8s.V1SecurityContext(run_as_user=0)
    pod_mutation_hook(pod)
    assert pod.spec.containers[0].security_context.run_as_user == 0
    assert "container base: runAsUser 0" in restricted_violations(pod)


def test_the_profile_check_names_each_broken_rule():
    pod = textbook_pod()
    pod_mutation_hook(pod)
    broken = copy.deepcopy(pod)
    sidecar = _sidecar(broken)
    sidecar.security_context.capabilities = k8s.V1Capabilities(add=["NET_ADMIN"])
    sidecar.security_context.allow_privilege_escalation = True
    broken.spec.volumes = [
        *(broken.spec.volumes or []),
        k8s.V1Volume(name="docker", host_path=k8s.V1HostPathVolumeSource(path="/var/run")),
    ]
    broken.spec.security_context.seccomp_profile = k8s.V1SeccompProfile(type="Unconfined")
    assert sorted(restricted_violations(broken)) == sorted(
        [
            "container airflow-xcom-sidecar: allowPrivilegeEscalation is not false",
            "container airflow-xcom-sidecar: capabilities do not drop ALL",
            "container airflow-xcom-sidecar: adds capabilities ['NET_ADMIN']",
            "container airflow-xcom-sidecar: seccompProfile is Unconfined",
            "container base: seccompProfile is Unconfined",
            "pod: seccompProfile Unconfined",
            "volume docker: type ['hostPath'] is not allowed",
        ]
    )


@pytest.mark.usefixtures("platform_container_task")
def test_platform_containers_have_a_read_only_root_and_a_bounded_tmp(container_pod: k8s.V1Pod):
    """The trainer and deployer write only to /tmp (their HOME and TMPDIR) and the XCom
    folder, both emptyDirs; everything else of the image is read-only."""
    base = next(c for c in container_pod.spec.containers if c.name == "base")
    assert base.security_context.read_only_root_filesystem is True
    mounts = {m.mount_path: m.name for m in base.volume_mounts or []}
    assert mounts["/tmp"] == "tmp"
    volumes = {v.name: v for v in container_pod.spec.volumes or []}
    assert volumes["tmp"].empty_dir.size_limit == "20Gi"
    assert volumes[mounts["/airflow/xcom"]].empty_dir is not None


def test_a_tasks_own_volumes_come_beside_the_scratch_one():
    from ml_platform.container import container_task_kwargs

    extra = k8s.V1Volume(name="cache", empty_dir=k8s.V1EmptyDirVolumeSource())
    mount = k8s.V1VolumeMount(name="cache", mount_path="/cache")
    kwargs = container_task_kwargs(image="trainer", volumes=[extra], volume_mounts=[mount])
    assert [v.name for v in kwargs["volumes"]] == ["tmp", "cache"]
    assert [m.mount_path for m in kwargs["volume_mounts"]] == ["/tmp", "/cache"]
