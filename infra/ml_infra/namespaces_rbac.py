"""Namespaces, the service accounts pods run as, the Roles they need, and the GPU quota.

Only what is used is granted:
- Airflow's task runners (and the triggerer, which polls deferred pods) may run pods in the
  training namespace, with exactly the verbs KubernetesPodOperator uses.
- The deployer (a pod in the training namespace) may manage the model server's Deployment
  and Service in the serving namespace, with the calls services/deployer makes.
- Training pods (each team's under its own account) and the model server get no API
  access at all (no token mounted).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from ml_infra.config import StackConfig
from ml_infra.conventions import GPU_RESOURCE, TEAM_LABEL
from ml_infra.endpoints import AIRFLOW_SERVICE_ACCOUNTS, airflow_task_runner
from ml_infra.kube import k8s_opts, metadata
from ml_infra.resources import StorageAccess
from ml_infra.team_identities import TeamIdentity, team_identities

POD_LAUNCHER_ROLE = "airflow-pod-launcher"
DEPLOYER_ROLE = "ml-deployer"
GPU_QUOTA = "gpu"

# KubernetesPodOperator: create the pod, watch it (deferrable: the triggerer polls it), read
# its logs and events, patch its labels when done, delete it, exec into the XCom sidecar.
POD_LAUNCHER_RULES = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "get", "list", "watch", "delete", "patch"],
    },
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
]
# services/deployer: read/create/patch/replace the Deployment (and read its status while
# rolling out), create/patch the Service, list ReplicaSets for the rollout, and delete what
# a failed first deploy created.
DEPLOYER_RULES = [
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
    },
    {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["get"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": [""],
        "resources": ["services"],
        "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
    },
]
# Every pod of these namespaces meets `restricted`: trainer and deploy pods (container_task,
# and pod_mutation_hook for textbook operators and the XCom sidecar: ml_platform.pod_security)
# and the model servers (services/deployer manifests). Anything else is refused at creation.
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}
# airflow, mlflow and storage run upstream charts whose pods are not all restricted-ready:
# baseline is enforced (no privileged pod, hostPath or host namespace gets in), and what
# restricted would refuse is reported as a warning on apply and in the audit log.
PLATFORM_POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


def _pod_security(config: StackConfig, role: str, workloads: set[str]) -> dict[str, str]:
    if role in workloads:
        return POD_SECURITY
    if role == "airflow" and config.airflow.dags.source == "local":
        # kind mounts the checkout into every Airflow pod by hostPath, which baseline refuses.
        return {**PLATFORM_POD_SECURITY, "pod-security.kubernetes.io/enforce": "privileged"}
    return PLATFORM_POD_SECURITY


def airflow_pod_launchers(config: StackConfig) -> list[str]:
    """Airflow's service accounts (chart naming) that run KubernetesPodOperator code."""
    return [
        AIRFLOW_SERVICE_ACCOUNTS[airflow_task_runner(config)],
        AIRFLOW_SERVICE_ACCOUNTS["triggerer"],
    ]


def declare_namespaces(
    config: StackConfig, provider: k8s.Provider
) -> dict[str, k8s.core.v1.Namespace]:
    workloads = {"training", "serving"}
    return {
        role: k8s.core.v1.Namespace(
            f"ns-{role}",
            metadata=metadata(name, labels=_pod_security(config, role, workloads)),
            opts=k8s_opts(provider),
        )
        for role, name in config.namespaces.items()
    }


def _team_account_metadata(
    config: StackConfig, identity: TeamIdentity, storage: StorageAccess
) -> dict:
    meta = metadata(
        identity.service_account, config.namespaces["training"], {TEAM_LABEL: identity.team}
    )
    annotations = storage.identity_annotations(identity.storage_identity)
    if annotations:
        meta["annotations"] = annotations
    return meta


def declare_service_accounts(
    config: StackConfig,
    provider: k8s.Provider,
    namespaces: dict[str, k8s.core.v1.Namespace],
    storage: StorageAccess,
) -> list[k8s.core.v1.ServiceAccount]:
    accounts = config.service_accounts
    # (role, namespace role, needs an API token)
    wanted = [
        ("training", "training", False),
        ("deployer", "training", True),  # the deploy task runs in the training namespace
        ("serving", "serving", False),
    ]
    platform = [
        k8s.core.v1.ServiceAccount(
            f"sa-{role}",
            metadata=metadata(accounts[role], config.namespaces[ns_role]),
            automount_service_account_token=token,
            opts=k8s_opts(provider, [namespaces[ns_role]]),
        )
        for role, ns_role, token in wanted
    ]
    # A team's pods run as the team (no API token: they never call Kubernetes); in the cloud
    # the account carries the team's storage identity, which EKS (IRSA) or GKE (Workload
    # Identity) hands its pods.
    teams = [
        k8s.core.v1.ServiceAccount(
            f"sa-{identity.service_account}",
            metadata=_team_account_metadata(config, identity, storage),
            automount_service_account_token=False,
            opts=k8s_opts(provider, [namespaces["training"]]),
        )
        for identity in team_identities(config)
    ]
    return platform + teams


def _role_with_binding(
    name: str,
    namespace: str,
    rules: list[dict],
    subjects: list[dict],
    provider: k8s.Provider,
    depends_on: list[pulumi.Resource],
) -> list[pulumi.Resource]:
    role = k8s.rbac.v1.Role(
        f"role-{name}",
        metadata=metadata(name, namespace),
        rules=rules,
        opts=k8s_opts(provider, depends_on),
    )
    binding = k8s.rbac.v1.RoleBinding(
        f"rolebinding-{name}",
        metadata=metadata(name, namespace),
        role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        subjects=subjects,
        opts=k8s_opts(provider, [role]),
    )
    return [role, binding]


def declare_rbac(
    config: StackConfig, provider: k8s.Provider, namespaces: dict[str, k8s.core.v1.Namespace]
) -> list[pulumi.Resource]:
    ns = config.namespaces
    launchers = [
        {"kind": "ServiceAccount", "name": account, "namespace": ns["airflow"]}
        for account in airflow_pod_launchers(config)
    ]
    deployer = [
        {
            "kind": "ServiceAccount",
            "name": config.service_accounts["deployer"],
            "namespace": ns["training"],
        }
    ]
    return [
        *_role_with_binding(
            POD_LAUNCHER_ROLE,
            ns["training"],
            POD_LAUNCHER_RULES,
            launchers,
            provider,
            [namespaces["training"]],
        ),
        *_role_with_binding(
            DEPLOYER_ROLE,
            ns["serving"],
            DEPLOYER_RULES,
            deployer,
            provider,
            [namespaces["serving"]],
        ),
    ]


def declare_gpu_quota(
    config: StackConfig, provider: k8s.Provider, namespaces: dict[str, k8s.core.v1.Namespace]
) -> k8s.core.v1.ResourceQuota:
    """At most `training.gpu_quota` GPUs requested at once by training pods."""
    return k8s.core.v1.ResourceQuota(
        "gpu-quota",
        metadata=metadata(GPU_QUOTA, config.namespaces["training"]),
        spec={"hard": {f"requests.{GPU_RESOURCE}": str(config.training_gpu_quota)}},
        opts=k8s_opts(provider, [namespaces["training"]]),
    )
