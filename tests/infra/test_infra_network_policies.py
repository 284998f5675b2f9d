"""Training and serving deny all traffic by default and allow only what the platform uses."""

from __future__ import annotations

import pytest
from pulumi_harness import STACKS, declared


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


@pytest.mark.parametrize("stack", STACKS)
def test_model_servers_take_traffic_on_their_port(stack: str):
    spec = _policies(stack)["ml-serving", "allow-model-server"]
    assert [p["port"] for rule in spec["ingress"] for p in rule["ports"]] == [8080]
    assert _egress_ports(spec) == {53, 5000}
