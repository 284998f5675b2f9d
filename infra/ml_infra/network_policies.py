"""NetworkPolicies: the training and serving namespaces deny everything, then allow what runs.

- every pod there: DNS;
- training pods: MLflow, object storage, and the model server (the deployer's smoke test);
- the deployer's pods: the Kubernetes API (to roll out the model server);
- model servers: MLflow (they load the model through it), and ingress on their port.

Airflow needs no rule: KubernetesPodOperator creates pods, reads their logs and execs into
the XCom sidecar through the Kubernetes API server, never by connecting to a pod.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from ml_infra.config import StackConfig
from ml_infra.conventions import IMAGE_LABEL
from ml_infra.endpoints import SEAWEEDFS_S3_PORT, SERVING_PORT
from ml_infra.kube import k8s_opts, metadata

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by Kubernetes on every namespace
KUBE_API_PORTS = (443, 6443)  # the Service's port and the API server's own


def _namespace(name: str) -> dict:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def _tcp(*ports: int) -> list[dict]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _dns() -> dict:
    return {
        "to": [_namespace("kube-system")],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def _storage_egress(config: StackConfig) -> dict:
    if config.cloud == "kind":
        return {"to": [_namespace(config.namespaces["storage"])], "ports": _tcp(SEAWEEDFS_S3_PORT)}
    # S3 / GCS are reached over HTTPS at public addresses.
    return {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": _tcp(443)}


def policy_specs(config: StackConfig) -> dict[tuple[str, str], dict]:
    """(namespace role, policy name) -> NetworkPolicy spec."""
    ns = config.namespaces
    mlflow = {"to": [_namespace(ns["mlflow"])], "ports": _tcp(config.mlflow.port)}
    all_pods: dict = {}
    return {
        ("training", "default-deny"): {
            "podSelector": all_pods,
            "policyTypes": ["Ingress", "Egress"],
        },
        ("training", "allow-dns-mlflow-storage"): {
            "podSelector": all_pods,
            "policyTypes": ["Egress"],
            "egress": [
                _dns(),
                mlflow,
                _storage_egress(config),
                {"to": [_namespace(ns["serving"])], "ports": _tcp(SERVING_PORT)},
            ],
        },
        ("training", "allow-deployer-kube-api"): {
            "podSelector": {"matchLabels": {IMAGE_LABEL: "deployer"}},
            "policyTypes": ["Egress"],
            "egress": [{"ports": _tcp(*KUBE_API_PORTS)}],
        },
        ("serving", "default-deny"): {
            "podSelector": all_pods,
            "policyTypes": ["Ingress", "Egress"],
        },
        ("serving", "allow-model-server"): {
            "podSelector": all_pods,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": {}}], "ports": _tcp(SERVING_PORT)}],
            "egress": [_dns(), mlflow],
        },
    }


def declare_network_policies(
    config: StackConfig, provider: k8s.Provider, namespaces: dict[str, k8s.core.v1.Namespace]
) -> list[pulumi.Resource]:
    return [
        k8s.networking.v1.NetworkPolicy(
            f"netpol-{role}-{name}",
            metadata=metadata(name, config.namespaces[role]),
            spec=spec,
            opts=k8s_opts(provider, [namespaces[role]]),
        )
        for (role, name), spec in policy_specs(config).items()
    ]
