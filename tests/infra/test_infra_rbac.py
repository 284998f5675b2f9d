"""RBAC grants exactly what KubernetesPodOperator and the deployer use, nothing else."""

from __future__ import annotations

import pytest
from pulumi_harness import STACKS, declared

POD_LAUNCHER = {
    ("", "pods"): {"create", "get", "list", "watch", "delete", "patch"},
    ("", "pods/log"): {"get", "list"},
    ("", "pods/exec"): {"create", "get"},
    ("", "events"): {"list", "watch"},
}
DEPLOYER = {
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("apps", "deployments/status"): {"get"},
    ("apps", "replicasets"): {"get", "list", "watch"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "update", "delete"},
}


def _grants(rules: list[dict]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


@pytest.mark.parametrize("stack", STACKS)
def test_roles_grant_exactly_the_listed_verbs(stack: str):
    roles = {
        (d.inputs["metadata"]["namespace"], d.inputs["metadata"]["name"]): d.inputs["rules"]
        for d in declared(stack).of_type("rbac.authorization.k8s.io/v1:Role")
    }
    assert roles.keys() == {("ml-training", "airflow-pod-launcher"), ("ml-serving", "ml-deployer")}
    assert _grants(roles["ml-training", "airflow-pod-launcher"]) == POD_LAUNCHER
    assert _grants(roles["ml-serving", "ml-deployer"]) == DEPLOYER
    assert not declared(stack).of_type("rbac.authorization.k8s.io/v1:ClusterRole")
    assert not declared(stack).of_type("rbac.authorization.k8s.io/v1:ClusterRoleBinding")


@pytest.mark.parametrize(
    ("stack", "runner"), [("kind", "airflow-scheduler"), ("prod", "airflow-worker")]
)
def test_bindings_name_the_accounts_that_run_the_code(stack: str, runner: str):
    bindings = {
        d.inputs["metadata"]["name"]: d.inputs
        for d in declared(stack).of_type("rbac.authorization.k8s.io/v1:RoleBinding")
    }
    launcher = bindings["airflow-pod-launcher"]
    assert launcher["roleRef"]["name"] == "airflow-pod-launcher"
    assert {(s["namespace"], s["name"]) for s in launcher["subjects"]} == {
        ("airflow", runner),
        ("airflow", "airflow-triggerer"),
    }
    deployer = bindings["ml-deployer"]
    assert deployer["subjects"] == [
        {"kind": "ServiceAccount", "name": "ml-deployer", "namespace": "ml-training"}
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_deployer_gets_an_api_token(stack: str):
    accounts = {
        d.inputs["metadata"]["name"]: d.inputs for d in declared(stack).of_type(":ServiceAccount")
    }
    assert {name: a["automountServiceAccountToken"] for name, a in accounts.items()} == {
        "ml-training-runner": False,
        "ml-deployer": True,
        "model-server": False,
        # Each team's pods run as the team (stack config teams, and the platform's own).
        "team-ml-platform": False,
        "team-examples": False,
    }


@pytest.mark.parametrize(("stack", "gpus"), [("kind", "2"), ("dev", "2"), ("prod", "16")])
def test_gpu_quota_in_the_training_namespace(stack: str, gpus: str):
    (quota,) = declared(stack).of_type(":ResourceQuota")
    assert quota.inputs["metadata"]["namespace"] == "ml-training"
    assert quota.inputs["spec"]["hard"] == {"requests.nvidia.com/gpu": gpus}


@pytest.mark.parametrize("stack", STACKS)
def test_workload_namespaces_enforce_pod_security_restricted(stack: str):
    labels = {
        d.inputs["metadata"]["name"]: d.inputs["metadata"].get("labels") or {}
        for d in declared(stack).of_type(":Namespace")
    }
    for namespace in ("ml-training", "ml-serving"):
        assert labels[namespace]["pod-security.kubernetes.io/enforce"] == "restricted", namespace


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespace_the_program_creates_has_a_pod_security_level(stack: str):
    """The upstream charts' namespaces enforce baseline and warn (and audit) at restricted."""
    labels = {
        d.inputs["metadata"]["name"]: d.inputs["metadata"].get("labels") or {}
        for d in declared(stack).of_type(":Namespace")
    }
    assert {"airflow", "mlflow", "storage", "ml-training", "ml-serving"} <= set(labels)
    # kind's emulated GPU device plugin mounts the node's kubelet socket (hostPath).
    assert set(labels) - {"airflow", "mlflow", "storage", "ml-training", "ml-serving"} <= {
        "gpu-operator"
    }
    for namespace in ("airflow", "mlflow", "storage"):
        levels = {k: v for k, v in labels[namespace].items() if k.startswith("pod-security.")}
        # kind's Airflow pods mount the local checkout by hostPath: not even baseline.
        enforced = "privileged" if (stack, namespace) == ("kind", "airflow") else "baseline"
        assert levels == {
            "pod-security.kubernetes.io/enforce": enforced,
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        }, namespace
