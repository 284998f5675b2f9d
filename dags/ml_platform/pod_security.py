"""What the PodSecurity `restricted` profile asks of a pod, as the platform's pods meet it.

The training and serving namespaces enforce `restricted` (infra/ml_infra/namespaces_rbac.py):
the API server refuses a pod any container of which may gain privileges, keeps a Linux
capability, may run as root or runs without a seccomp profile. container_task sets all of
it; pod_mutation_hook fills what a textbook KubernetesPodOperator leaves unset, and gives
Airflow's XCom sidecar (alpine, root by default, no limits) a restricted context and limits.
A value a DAG sets explicitly is kept: admission then refuses it with its own message.

A deployer pod (labelled `ml-platform/image=deployer`) gets its API token only where it is
used: no automounted token, and a projected one (token, cluster CA, namespace) mounted
read-only in the deployer container alone, where the kubernetes client's
load_incluster_config finds it. The XCom sidecar, which Airflow's identity may exec into,
holds none; infra's admission policies (ml_infra.admission_policies) refuse it otherwise.
"""

from __future__ import annotations

from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
from kubernetes.client import models as k8s

from ml_platform.settings import IMAGE_LABEL

RUN_AS_USER = 10001  # the non-root user the platform images create
XCOM_SIDECAR = PodDefaults.SIDECAR_CONTAINER_NAME
# The sidecar only sleeps until Airflow execs `cat` and `kill` in it. Requests as the
# provider sets them (capacity figures do not move); limits so a quota on limits admits it.
XCOM_SIDECAR_REQUESTS = {"cpu": "1m", "memory": "10Mi"}
XCOM_SIDECAR_LIMITS = {"cpu": "50m", "memory": "32Mi"}
# Where Kubernetes clients look for a pod's API credentials (token, ca.crt, namespace).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEPLOYER_TOKEN_VOLUME = "deployer-api-access"
# The client re-reads the file; the kubelet renews the token at 80% of its lifetime.
TOKEN_EXPIRATION_SECONDS = 3600
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"  # published by Kubernetes in every namespace


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


def deployer_token_volume() -> k8s.V1Volume:
    """What the API server would automount, as a volume of its own."""
    namespace = k8s.V1DownwardAPIVolumeFile(
        path="namespace",
        field_ref=k8s.V1ObjectFieldSelector(api_version="v1", field_path="metadata.namespace"),
    )
    sources = [
        k8s.V1VolumeProjection(
            service_account_token=k8s.V1ServiceAccountTokenProjection(
                path="token", expiration_seconds=TOKEN_EXPIRATION_SECONDS
            )
        ),
        k8s.V1VolumeProjection(
            config_map=k8s.V1ConfigMapProjection(
                name=ROOT_CA_CONFIGMAP, items=[k8s.V1KeyToPath(key="ca.crt", path="ca.crt")]
            )
        ),
        k8s.V1VolumeProjection(downward_api=k8s.V1DownwardAPIProjection(items=[namespace])),
    ]
    return k8s.V1Volume(
        name=DEPLOYER_TOKEN_VOLUME,
        projected=k8s.V1ProjectedVolumeSource(default_mode=0o444, sources=sources),
    )


def confine_deployer_token(pod: k8s.V1Pod) -> None:
    """A deployer pod's token in its deployer container only: the operator's own container
    (the first that is not the XCom sidecar)."""
    labels = (pod.metadata.labels if pod.metadata else None) or {}
    if labels.get(IMAGE_LABEL) != "deployer":
        return
    spec = pod.spec
    deployer = next((c for c in spec.containers or [] if c.name != XCOM_SIDECAR), None)
    if deployer is None:
        return
    spec.automount_service_account_token = False
    volumes = list(spec.volumes or [])
    if all(v.name != DEPLOYER_TOKEN_VOLUME for v in volumes):
        volumes.append(deployer_token_volume())
    spec.volumes = volumes
    mounts = list(deployer.volume_mounts or [])
    if all(m.mount_path != SERVICE_ACCOUNT_DIR for m in mounts):
        mounts.append(
            k8s.V1VolumeMount(
                name=DEPLOYER_TOKEN_VOLUME, mount_path=SERVICE_ACCOUNT_DIR, read_only=True
            )
        )
    deployer.volume_mounts = mounts


def restrict_pod(pod: k8s.V1Pod) -> None:
    """Fill in what `restricted` requires and `pod` leaves unset; the XCom sidecar gets its
    whole context and small limits; a deployer pod's token goes to its deployer container."""
    confine_deployer_token(pod)
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
