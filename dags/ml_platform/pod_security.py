"""What the PodSecurity `restricted` profile asks of a pod, as the platform's pods meet it.

The training and serving namespaces enforce `restricted` (infra/ml_infra/namespaces_rbac.py):
the API server refuses a pod any container of which may gain privileges, keeps a Linux
capability, may run as root or runs without a seccomp profile. container_task sets all of
it; pod_mutation_hook fills what a textbook KubernetesPodOperator leaves unset, and gives
Airflow's XCom sidecar (alpine, root by default, no limits) a restricted context and limits.
A value a DAG sets explicitly is kept: admission then refuses it with its own message.
"""

from __future__ import annotations

from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
from kubernetes.client import models as k8s

RUN_AS_USER = 10001  # the non-root user the platform images create
XCOM_SIDECAR = PodDefaults.SIDECAR_CONTAINER_NAME
# The sidecar only sleeps until Airflow execs `cat` and `kill` in it. Requests as the
# provider sets them (capacity figures do not move); limits so a quota on limits admits it.
XCOM_SIDECAR_REQUESTS = {"cpu": "1m", "memory": "10Mi"}
XCOM_SIDECAR_LIMITS = {"cpu": "50m", "memory": "32Mi"}


def pod_security_context() -> k8s.V1PodSecurityContext:
    """Pod level: only what every container accepts (the seccomp profile)."""
    return k8s.V1PodSecurityContext(seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"))


def container_security_context(read_only_root: bool = False) -> k8s.V1SecurityContext:
    """A container that meets `restricted` on its own, whatever the pod level says."""
    return k8s.V1SecurityContext(
        run_as_non_root=True,
        run_as_user=RUN_AS_USER,
        run_as_group=RUN_AS_USER,
        allow_privilege_escalation=False,
        privileged=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        read_only_root_filesystem=read_only_root or None,
    )


def xcom_sidecar_security_context() -> k8s.V1SecurityContext:
    """The XCom sidecar writes nothing: read-only root. Same user as the platform images,
    so it reads the result file the task wrote."""
    return container_security_context(read_only_root=True)


def xcom_sidecar_resources() -> k8s.V1ResourceRequirements:
    return k8s.V1ResourceRequirements(
        requests=dict(XCOM_SIDECAR_REQUESTS), limits=dict(XCOM_SIDECAR_LIMITS)
    )


def xcom_sidecar_container() -> k8s.V1Container:
    """The XCom sidecar as the cluster gets it (context and size), for pods built offline."""
    return k8s.V1Container(
        name=XCOM_SIDECAR,
        resources=xcom_sidecar_resources(),
        security_context=xcom_sidecar_security_context(),
    )


def _fill(
    context: k8s.V1SecurityContext | None, wanted: k8s.V1SecurityContext
) -> k8s.V1SecurityContext:
    context = context or k8s.V1SecurityContext()
    # The seccomp profile is left to the pod level, which restrict_pod always sets.
    for attribute in ("run_as_non_root", "allow_privilege_escalation"):
        if getattr(context, attribute) is None:
            setattr(context, attribute, getattr(wanted, attribute))
    if context.run_as_user is None and context.run_as_non_root:
        context.run_as_user = wanted.run_as_user
    if context.read_only_root_filesystem is None:
        context.read_only_root_filesystem = wanted.read_only_root_filesystem
    capabilities = context.capabilities or k8s.V1Capabilities()
    if "ALL" not in (capabilities.drop or []):
        capabilities.drop = [*(capabilities.drop or []), "ALL"]
    context.capabilities = capabilities
    return context


def restrict_pod(pod: k8s.V1Pod) -> None:
    """Fill in what `restricted` requires and `pod` leaves unset; the XCom sidecar gets its
    whole context and small limits."""
    spec = pod.spec
    spec.security_context = spec.security_context or k8s.V1PodSecurityContext()
    if spec.security_context.seccomp_profile is None:
        spec.security_context.seccomp_profile = k8s.V1SeccompProfile(type="RuntimeDefault")
    for container in [*(spec.init_containers or []), *(spec.containers or [])]:
        sidecar = container.name == XCOM_SIDECAR
        wanted = xcom_sidecar_security_context() if sidecar else container_security_context()
        if spec.security_context.run_as_non_root is not None:
            wanted.run_as_non_root = None  # the pod level decides for this container
        container.security_context = _fill(container.security_context, wanted)
        if sidecar and not (container.resources and container.resources.limits):
            container.resources = xcom_sidecar_resources()
