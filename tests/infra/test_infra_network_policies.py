"""Training and serving deny all traffic by default and allow only what the platform uses."""

from __future__ import annotations

import pytest
from pulumi_harness import STACKS, declared, stack_values


def _policies(stack: str) -> dict[tuple[str, str], dict]:
    return {
        (d.inputs["metadata"]["namespace"], d.inputs["metadata"]["name"]): d.inputs["spec"]
        for d in declared(stack).of_type(":NetworkPolicy")
    }


def _egress_ports(spec: dict) -> set[int]:
    return {port["port"] for rule in spec.get("egress", []) for port in rule.get("ports", [])}


@pytest.mark.parametrize("stack", STACKS)
def test_default_deny_in_training_and_serving(stack: str):
    policies = _policies(stack)
    for namespace in ("ml-training", "ml-serving"):
        deny = policies[namespace, "default-deny"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


@pytest.mark.parametrize(("stack", "storage_port"), [("kind", 8333), ("dev", 443), ("prod", 443)])
def test_training_pods_reach_dns_mlflow_storage_only(stack: str, storage_port: int):
    spec = _policies(stack)["ml-training", "allow-dns-mlflow-storage"]
    assert spec["policyTypes"] == ["Egress"]
    assert _egress_ports(spec) == {53, 5000, storage_port, 8080}
    to_mlflow = next(r for r in spec["egress"] if r["ports"][0]["port"] == 5000)
    assert to_mlflow["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mlflow"}}}
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_deployer_reaches_the_kubernetes_api(stack: str):
    spec = _policies(stack)["ml-training", "allow-deployer-kube-api"]
    assert spec["podSelector"] == {"matchLabels": {"ml-platform/image": "deployer"}}
    assert _egress_ports(spec) == {443, 6443}
    # On a cloud, only where the API server's endpoints are: the VPC (EKS ENIs), the
    # cluster's subnet (GKE's private endpoint); kind's API server address is not known.
    (rule,) = spec["egress"]
    values = stack_values(stack)
    expected = {
        "kind": None,
        "dev": values["ml-platform:gcp"]["subnet_cidr"] if stack == "dev" else None,
        "prod": values["ml-platform:aws"]["vpc_cidr"] if stack == "prod" else None,
    }[stack]
    if expected is None:
        assert "to" not in rule
    else:
        assert rule["to"] == [{"ipBlock": {"cidr": expected}}]


@pytest.mark.parametrize("stack", STACKS)
def test_model_servers_take_traffic_on_their_port(stack: str):
    spec = _policies(stack)["ml-serving", "allow-model-server"]
    assert [p["port"] for rule in spec["ingress"] for p in rule["ports"]] == [8080]
    assert _egress_ports(spec) == {53, 5000}


# Our reading of NetworkPolicy semantics, for policies that select every pod of their
# namespace (all of ours but the deployer's): a connection from namespace A to namespace B on
# a port is allowed when some Egress policy of A lets it out and some Ingress policy of B in.
KUBE_API = "kube-api"  # the API server: outside every namespace
OUTSIDE = "outside"  # an address outside the cluster (a managed database, S3, a git host)


def _peer_matches(peer: dict, own: str, other: str) -> bool:
    if "ipBlock" in peer:
        return other in (OUTSIDE, KUBE_API)
    if "namespaceSelector" in peer:
        wanted = peer["namespaceSelector"].get("matchLabels", {})
        return (
            other not in (OUTSIDE, KUBE_API)
            and wanted.items() <= {"kubernetes.io/metadata.name": other}.items()
        )
    return other == own  # a bare podSelector: pods of the policy's own namespace


def _rule_allows(rule: dict, peers_key: str, own: str, other: str, port: int) -> bool:
    ports = rule.get("ports")
    if ports and port not in {p["port"] for p in ports}:
        return False
    peers = rule.get(peers_key)
    return not peers or any(_peer_matches(peer, own, other) for peer in peers)


def _allowed(policies: dict, direction: str, namespace: str, other: str, port: int) -> bool:
    if namespace in (OUTSIDE, KUBE_API):
        return True  # nothing of ours restricts them
    selecting = [
        spec
        for (ns, _), spec in policies.items()
        if ns == namespace and spec["podSelector"] == {} and direction in spec["policyTypes"]
    ]
    if not selecting:
        return True  # no policy selects the pods: Kubernetes allows everything
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    return any(
        _rule_allows(rule, peers_key, namespace, other, port)
        for spec in selecting
        for rule in spec.get(key, [])
    )


def _connects(policies: dict, source: str, target: str, port: int) -> bool:
    return _allowed(policies, "Egress", source, target, port) and _allowed(
        policies, "Ingress", target, source, port
    )


# (from, to, port, why): on every stack; on kind the database and S3 are in the storage
# namespace, on a cloud outside the cluster.
NEEDED = [
    ("airflow", "airflow", 8080, "workers and the scheduler call the API server"),
    ("airflow", "airflow", 6379, "Celery's Redis"),
    ("airflow", "kube-system", 53, "DNS"),
    ("airflow", KUBE_API, 443, "KubernetesPodOperator creates pods, reads logs, execs"),
    ("mlflow", "mlflow", 5000, "the server's own health checks, the mlflow-users Job"),
    ("ml-training", "mlflow", 5000, "training logs runs and models"),
    ("ml-serving", "mlflow", 5000, "model servers load their model"),
    ("ml-training", "ml-serving", 8080, "the deployer's smoke test"),
]
KIND_NEEDED = [
    ("airflow", "storage", 5432, "Airflow's metadata database"),
    ("mlflow", "storage", 5432, "MLflow's backend store"),
    ("storage", "storage", 5432, "the database setup Job"),
    ("airflow", "storage", 8333, "task logs in S3"),
    ("mlflow", "storage", 8333, "artifacts, proxied"),
    ("ml-training", "storage", 8333, "datasets"),
]
CLOUD_NEEDED = [
    ("airflow", OUTSIDE, 5432, "Airflow's metadata database"),
    ("mlflow", OUTSIDE, 5432, "MLflow's backend store"),
    ("storage", OUTSIDE, 5432, "the database setup Job"),
    ("airflow", OUTSIDE, 443, "task logs in S3/GCS, the git DAG bundle"),
    ("mlflow", OUTSIDE, 443, "artifacts, proxied"),
]
# Paths that must stay closed: the metadata database, the object store's admin identity,
# the Airflow API and MLflow from where no platform component needs them.
FORBIDDEN = [
    ("ml-training", "airflow", 8080),
    ("ml-serving", "airflow", 8080),
    ("ml-training", "storage", 5432),
    ("ml-serving", "storage", 5432),
    ("ml-serving", "storage", 8333),
    ("ml-serving", "ml-training", 8080),
    ("airflow", "mlflow", 5000),
    ("storage", "mlflow", 5000),
    ("ml-training", "mlflow", 5432),
]


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespace_denies_by_default(stack: str):
    policies = _policies(stack)
    for namespace in ("airflow", "mlflow", "storage", "ml-training", "ml-serving"):
        assert policies[namespace, "default-deny"] == {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
        }, namespace


@pytest.mark.parametrize("stack", STACKS)
def test_each_component_reaches_what_it_needs(stack: str):
    policies = _policies(stack)
    needed = NEEDED + (KIND_NEEDED if stack == "kind" else CLOUD_NEEDED)
    blocked = [
        why for source, target, port, why in needed if not _connects(policies, source, target, port)
    ]
    assert blocked == []


@pytest.mark.parametrize("stack", STACKS)
def test_nothing_else_reaches_the_databases_the_airflow_api_or_mlflow(stack: str):
    policies = _policies(stack)
    opened = [path for path in FORBIDDEN if _connects(policies, *path)]
    assert opened == []


def test_the_evaluator_sees_a_closed_path():
    """Without the storage namespace's ingress rules, kind's database is closed to airflow."""
    policies = {
        k: v for k, v in _policies("kind").items() if k[1] != "allow-database-and-s3-clients"
    }
    assert not _connects(policies, "airflow", "storage", 5432)
    assert _connects(_policies("kind"), "airflow", "storage", 5432)
