"""NetworkPolicies: every namespace the program creates denies everything, then allows what runs.

- every pod: DNS;
- training pods: MLflow, object storage, and the model server (the deployer's smoke test);
  nothing else outside the cluster;
- the deployer's pods: the Kubernetes API (to roll out the model server), at its addresses
  where the cloud says them;
- model servers: MLflow (they load the model through it), and ingress on their port;
- airflow: its components talk among themselves (API server, scheduler, DAG processor,
  triggerer, workers, Redis, StatsD), reach the metadata database, the log bucket, the
  Kubernetes API (KubernetesPodOperator creates pods, reads logs and execs into the XCom
  sidecar through it, never by connecting to a pod) and, with a git DAG bundle, the
  repository; nothing outside the namespace connects to them;
- mlflow: takes requests from training and serving only, reaches its database and the
  artifact bucket (it proxies artifacts);
- storage (the database setup Job; on kind also PostgreSQL and SeaweedFS): PostgreSQL takes
  connections from airflow and mlflow, the S3 endpoint from training, airflow and mlflow.

Object storage, for training, airflow and mlflow: on kind SeaweedFS in the storage namespace;
in the cloud HTTPS to the addresses the cluster's network reaches it at, and no others
(ClusterAccess.storage_cidrs): on EKS the region's S3 prefix list, which the VPC routes
through a gateway endpoint; on GKE Private Google Access's private.googleapis.com range,
which a private DNS zone makes every *.googleapis.com name resolve to.

Credentials for object storage, for the same pods: on EKS (IRSA: they trade their web
identity token at STS) HTTPS to the private subnets, where the VPC's STS interface endpoint
answers for sts.<region>.amazonaws.com; on GKE (Workload Identity) the GKE metadata server at
169.254.169.254:80, which hands them their GCP service account's tokens (Dataplane V2 checks
the policy against that address before the node redirects it to the server). kind uses keys:
no such rule.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from ml_infra.cluster_eks import private_subnet_cidrs
from ml_infra.config import StackConfig
from ml_infra.conventions import IMAGE_LABEL
from ml_infra.endpoints import POSTGRES_PORT, SEAWEEDFS_S3_PORT, SERVING_PORT
from ml_infra.kube import k8s_opts, metadata

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by Kubernetes on every namespace
KUBE_API_PORTS = (443, 6443)  # the Service's port and the API server's own
# GKE's metadata server as pods address it (Workload Identity's token endpoint).
GKE_METADATA_SERVER = ("169.254.169.254/32", 80)


def _namespace(name: str) -> dict:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def _tcp(*ports: int) -> list[dict]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _dns() -> dict:
    return {
        "to": [_namespace("kube-system")],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def _ip_blocks(cidrs: Sequence[str]) -> list[dict]:
    if not cidrs:
        # A rule with no peers allows every address: never let that stand for storage.
        raise ValueError("no object storage addresses: refusing an egress rule open to all")
    return [{"ipBlock": {"cidr": cidr}} for cidr in sorted(cidrs)]


def _storage_egress(config: StackConfig, storage_cidrs: pulumi.Input[Sequence[str]] | None) -> dict:
    """Object storage: SeaweedFS's S3 port on kind; HTTPS to `storage_cidrs` in the cloud."""
    if config.cloud == "kind":
        return {"to": [_namespace(config.namespaces["storage"])], "ports": _tcp(SEAWEEDFS_S3_PORT)}
    if storage_cidrs is None:
        raise ValueError(f"{config.cloud}: the cluster's network gave no object storage addresses")
    return {"to": pulumi.Output.from_input(storage_cidrs).apply(_ip_blocks), "ports": _tcp(443)}


def _credential_egress(config: StackConfig) -> list[dict]:
    """EKS: HTTPS to the private subnets, where the STS endpoint's interfaces are (its
    addresses are AWS's pick within them). The subnets come from the config, split the way
    the cluster's network splits them. GKE: the metadata server, the one place Workload
    Identity tokens come from. kind: none, storage identities have keys."""
    if config.cloud == "aws" and config.aws:
        cidrs = private_subnet_cidrs(config.aws)
        return [{"to": [{"ipBlock": {"cidr": cidr}} for cidr in cidrs], "ports": _tcp(443)}]
    if config.cloud == "gcp":
        cidr, port = GKE_METADATA_SERVER
        return [{"to": [{"ipBlock": {"cidr": cidr}}], "ports": _tcp(port)}]
    return []


def _kube_api_egress(config: StackConfig) -> dict:
    """The Kubernetes API server, as a pod reaches it (policies see the address behind the
    `kubernetes` Service): on EKS its endpoint ENIs sit in the VPC's subnets, on GKE (private
    nodes, Private Service Connect) its private endpoint in the cluster's subnet. kind's API
    server is a Docker container on a network the program does not know: port only there."""
    ports = _tcp(*KUBE_API_PORTS)
    if config.cloud == "aws" and config.aws:
        return {"to": [{"ipBlock": {"cidr": config.aws.vpc_cidr}}], "ports": ports}
    if config.cloud == "gcp" and config.gcp:
        return {"to": [{"ipBlock": {"cidr": config.gcp.subnet_cidr}}], "ports": ports}
    return {"ports": ports}


def _database_egress(config: StackConfig) -> dict:
    """The metadata database: kind's PostgreSQL in the storage namespace, RDS inside the VPC,
    Cloud SQL at its private address (allocated by Google in the peering range: port only)."""
    if config.cloud == "kind":
        return {"to": [_namespace(config.namespaces["storage"])], "ports": _tcp(POSTGRES_PORT)}
    if config.cloud == "aws" and config.aws:
        return {"to": [{"ipBlock": {"cidr": config.aws.vpc_cidr}}], "ports": _tcp(POSTGRES_PORT)}
    return {"ports": _tcp(POSTGRES_PORT)}


def _same_namespace() -> dict:
    return {"podSelector": {}}


def _platform_namespace_specs(
    config: StackConfig, storage: list[dict]
) -> dict[tuple[str, str], dict]:
    """Default-deny and allows for the airflow, mlflow and storage namespaces; `storage` is
    the egress rules to object storage and, where it takes one, to its credentials."""
    ns = config.namespaces
    all_pods: dict = {}
    deny = {"podSelector": all_pods, "policyTypes": ["Ingress", "Egress"]}
    within = {
        "podSelector": all_pods,
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [_same_namespace()]}],
        "egress": [{"to": [_same_namespace()]}, _dns()],
    }
    airflow_out = [_database_egress(config), *storage]
    # KubernetesPodOperator and the git DAG bundle: HTTPS to the API server and the repository.
    airflow_out.append({"ports": _tcp(*KUBE_API_PORTS)})
    specs = {
        ("airflow", "default-deny"): deny,
        ("airflow", "allow-within-namespace"): within,
        ("airflow", "allow-database-logs-kube-api"): {
            "podSelector": all_pods,
            "policyTypes": ["Egress"],
            "egress": airflow_out,
        },
        ("mlflow", "default-deny"): deny,
        ("mlflow", "allow-within-namespace"): within,
        ("mlflow", "allow-tracking-clients"): {
            "podSelector": all_pods,
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [_namespace(ns["training"]), _namespace(ns["serving"])],
                    "ports": _tcp(config.mlflow.port),
                }
            ],
            "egress": [_database_egress(config), *storage],
        },
        ("storage", "default-deny"): deny,
        ("storage", "allow-within-namespace"): within,
        # The database setup Job reaches a managed database outside the cluster.
        ("storage", "allow-database"): {
            "podSelector": all_pods,
            "policyTypes": ["Egress"],
            "egress": [_database_egress(config)],
        },
    }
    if config.cloud == "kind":
        specs["storage", "allow-database-and-s3-clients"] = {
            "podSelector": all_pods,
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [_namespace(ns["airflow"]), _namespace(ns["mlflow"])],
                    "ports": _tcp(POSTGRES_PORT),
                },
                {
                    "from": [_namespace(ns[r]) for r in ("training", "airflow", "mlflow")],
                    "ports": _tcp(SEAWEEDFS_S3_PORT),
                },
            ],
        }
    return specs


def policy_specs(
    config: StackConfig, storage_cidrs: pulumi.Input[Sequence[str]] | None = None
) -> dict[tuple[str, str], dict]:
    """(namespace role, policy name) -> NetworkPolicy spec. `storage_cidrs`: where pods reach
    object storage on a cloud (kind: unused, storage is in the cluster)."""
    ns = config.namespaces
    storage = [_storage_egress(config, storage_cidrs), *_credential_egress(config)]
    mlflow = {"to": [_namespace(ns["mlflow"])], "ports": _tcp(config.mlflow.port)}
    all_pods: dict = {}
    return _platform_namespace_specs(config, storage) | {
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
                *storage,
                {"to": [_namespace(ns["serving"])], "ports": _tcp(SERVING_PORT)},
            ],
        },
        ("training", "allow-deployer-kube-api"): {
            "podSelector": {"matchLabels": {IMAGE_LABEL: "deployer"}},
            "policyTypes": ["Egress"],
            "egress": [_kube_api_egress(config)],
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
    config: StackConfig,
    provider: k8s.Provider,
    namespaces: dict[str, k8s.core.v1.Namespace],
    storage_cidrs: pulumi.Input[Sequence[str]] | None = None,
) -> list[pulumi.Resource]:
    return [
        k8s.networking.v1.NetworkPolicy(
            f"netpol-{role}-{name}",
            metadata=metadata(name, config.namespaces[role]),
            spec=spec,
            opts=k8s_opts(provider, [namespaces[role]]),
        )
        for (role, name), spec in policy_specs(config, storage_cidrs).items()
    ]
