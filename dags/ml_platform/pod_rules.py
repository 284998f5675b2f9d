"""The platform's rules for a pod: what a task's pod must not do, and what it must declare.

One implementation for three callers: `make check-dags` (on the pods ml_platform.inspection
builds), task_policy (on a KubernetesPodOperator's arguments, when the DAG is parsed) and
pod_mutation_hook (on the pod Airflow is about to create).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.backcompat.backwards_compat_converters import (
    convert_affinity,
    convert_env_vars,
    convert_toleration,
)
from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
from kubernetes.client import models as k8s

from ml_platform.pod_security import xcom_sidecar_container
from ml_platform.violations import Violation

# Codes pod_mutation_hook enforces on every pod Airflow creates (worker pods included).
SECURITY_CODES = frozenset({"MLP202", "MLP203", "MLP204"})
HOST_NAMESPACES = {"host_network": "hostNetwork", "host_pid": "hostPID", "host_ipc": "hostIPC"}
# KubernetesPodOperator's keyword for each, where it has one.
_OPERATOR_KEYWORD = {"host_network": "hostnetwork=True"}
_SIDECAR = PodDefaults.SIDECAR_CONTAINER_NAME  # Airflow's own XCom container, not the DAG's


def _as_dict(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else value


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _as_dict(c) or {}
        for key in ("init_containers", "containers", "ephemeral_containers")
        for c in spec.get(key) or []
    ]


def _host_namespace_violations(spec: dict[str, Any], where: str) -> list[Violation]:
    found = []
    for field, name in HOST_NAMESPACES.items():
        if spec.get(field):
            keyword = _OPERATOR_KEYWORD.get(field, f"{name}: true in the pod spec")
            found.append(
                Violation(
                    "MLP204",
                    f"{where} sets {name}: true and shares the node's namespace with it",
                    f"remove {keyword}; talk to services through their cluster DNS names",
                )
            )
    return found


def _host_path_violations(spec: dict[str, Any], where: str) -> list[Violation]:
    return [
        Violation(
            "MLP203",
            f"{where} mounts hostPath {volume['host_path'].get('path')!r} "
            f"(volume {volume.get('name')!r}) from the node's disk",
            "use an emptyDir for scratch space, and object storage URIs for data",
        )
        for volume in (_as_dict(v) or {} for v in spec.get("volumes") or [])
        if volume.get("host_path")
    ]


def _privileged_violations(spec: dict[str, Any], where: str) -> list[Violation]:
    return [
        Violation(
            "MLP202",
            f"{where}: container {c.get('name')!r} runs privileged (root on the node)",
            "drop privileged=True from its security context; container_task runs "
            "as a non-root user with no privileges",
        )
        for c in _containers(spec)
        if ((_as_dict(c.get("security_context")) or {}).get("privileged"))
    ]


def _image_violations(spec: dict[str, Any], where: str, registry: str) -> list[Violation]:
    found = []
    for container in _containers(spec):
        image = container.get("image") or ""
        if container.get("name") == _SIDECAR or "{{" in image:
            continue  # Airflow's sidecar; a templated image is only known at run time
        if not image.startswith(registry.rstrip("/") + "/"):
            found.append(
                Violation(
                    "MLP205",
                    f"{where}: container {container.get('name')!r} runs image {image!r}, "
                    f"not from the platform registry {registry!r}",
                    "use container_task(image='trainer'|'deployer'), or push the image "
                    f"to {registry}/ through the platform's image build",
                )
            )
    return found


def _resource_violations(spec: dict[str, Any], where: str, base: str) -> list[Violation]:
    container = next((c for c in _containers(spec) if c.get("name") == base), None)
    if container is None:
        return []
    resources = _as_dict(container.get("resources")) or {}
    missing = [
        f"{kind}.{resource}"
        for kind in ("requests", "limits")
        for resource in ("cpu", "memory")
        if not (resources.get(kind) or {}).get(resource)
    ]
    if not missing:
        return []
    return [
        Violation(
            "MLP201",
            f"{where}: container {base!r} sets no {', '.join(missing)}",
            "use ml_platform.container.container_task(cpu=..., memory=...), or pass "
            "container_resources=k8s.V1ResourceRequirements(requests={'cpu': '1', "
            "'memory': '2Gi'}, limits={'cpu': '1', 'memory': '2Gi'})",
        )
    ]


def pod_violations(
    pod: k8s.V1Pod | dict[str, Any],
    *,
    where: str,
    registry: str | None = None,
    base_container: str | None = None,
    codes: frozenset[str] | None = None,
) -> list[Violation]:
    """What is wrong with `pod` (a V1Pod or its to_dict()).

    `where` names the pod in messages. Image and resource rules need `registry` and the name
    of the task's own container (`base_container`); `codes` keeps only some rules.
    """
    spec = _as_dict((_as_dict(pod) or {}).get("spec")) or {}
    found = (
        _privileged_violations(spec, where)
        + _host_path_violations(spec, where)
        + _host_namespace_violations(spec, where)
    )
    if registry:
        found += _image_violations(spec, where, registry)
    if base_container:
        found += _resource_violations(spec, where, base_container)
    return [v for v in found if codes is None or v.code in codes]


def task_argument(task: Any, name: str) -> Any:
    """A KubernetesPodOperator's argument: a mapped task's partial() keyword, else the
    operator's attribute."""
    kwargs = getattr(task, "partial_kwargs", None)
    return kwargs.get(name) if kwargs is not None else getattr(task, name, None)


def set_task_argument(task: Any, name: str, value: Any) -> None:
    """Change a KubernetesPodOperator's argument (task_policy, before the pod is built)."""
    kwargs = getattr(task, "partial_kwargs", None)
    if kwargs is not None:
        kwargs[name] = value
    else:
        setattr(task, name, value)


def _secret_refs(
    secrets: list[Any],
) -> tuple[list[k8s.V1EnvVar], list[k8s.V1EnvFromSource], list[k8s.V1Volume]]:
    """What the operator's `secrets` (airflow Secret objects) add to its pod."""
    env, env_from, volumes = [], [], []
    for secret in secrets:
        if secret.deploy_type == "volume":
            volumes.append(secret.to_volume_secret()[0])
        elif secret.key is not None:
            env.append(secret.to_env_secret())
        else:
            env_from.append(secret.to_env_from_secret())
    return env, env_from, volumes


def operator_pod(task: Any) -> k8s.V1Pod:
    """The parts of a KubernetesPodOperator's pod its arguments decide, without building it.

    task_policy runs while the DAG processor parses a file: building the real pod there would
    ask the Kubernetes connection for the sidecar image on every parse. A mapped task's
    arguments are its partial() keywords; what it expands is only known at run time.
    """

    def get(name: str) -> Any:
        return task_argument(task, name)

    secret_env, secret_env_from, secret_volumes = _secret_refs(list(get("secrets") or []))
    env = convert_env_vars(get("env_vars")) if get("env_vars") else []
    base = k8s.V1Container(
        name=get("base_container_name") or "base",
        image=get("image"),
        command=get("cmds") or None,
        env=[*env, *secret_env] or None,
        env_from=[*(get("env_from") or []), *secret_env_from] or None,
        resources=get("container_resources"),
        security_context=get("container_security_context"),
    )
    containers = [base]
    if get("do_xcom_push"):
        containers.append(xcom_sidecar_container())  # its requests count for placement
    spec = k8s.V1PodSpec(
        containers=containers,
        service_account_name=get("service_account_name"),
        init_containers=get("init_containers") or None,
        volumes=[*(get("volumes") or []), *secret_volumes] or None,
        host_network=bool(get("hostnetwork")),
        # Where the pod may run, for the capacity of a GPU sweep (policies.task_policy).
        tolerations=[convert_toleration(t) for t in get("tolerations") or []] or None,
        affinity=convert_affinity(get("affinity")) if get("affinity") else None,
        node_selector=get("node_selector") or None,
    )
    metadata = k8s.V1ObjectMeta(
        name=task.task_id, namespace=get("namespace"), labels=dict(get("labels") or {})
    )
    full_pod_spec = get("full_pod_spec")
    if full_pod_spec is not None and full_pod_spec.spec is not None:
        extra = full_pod_spec.spec
        for container in extra.containers or []:
            if container.name != base.name:
                spec.containers.append(container)
                continue
            # The operator's arguments win over the spec's, as when the pod is built.
            base.image = base.image or container.image
            base.resources = base.resources or container.resources
            base.security_context = base.security_context or container.security_context
        spec.init_containers = list(spec.init_containers or []) + list(extra.init_containers or [])
        spec.volumes = list(spec.volumes or []) + list(extra.volumes or [])
        spec.host_network = spec.host_network or extra.host_network
        spec.host_pid, spec.host_ipc = extra.host_pid, extra.host_ipc
    return k8s.V1Pod(metadata=metadata, spec=spec)
