"""The cloud stacks reach their cluster with a kubeconfig that authenticates through the
cloud's own exec plugin (no long-lived token in the state)."""

from __future__ import annotations

import json

import pytest
from pulumi_harness import declared

EXPECTED = {
    "dev": ("https://203.0.113.10", "gke-gcloud-auth-plugin"),
    "prod": ("https://eks.mock", "aws"),
}


@pytest.mark.parametrize("stack", sorted(EXPECTED))
def test_cloud_kubeconfig_uses_the_exec_plugin(stack: str) -> None:
    (provider,) = [d for d in declared(stack).declared if d.type == "pulumi:providers:kubernetes"]
    config = json.loads(provider.inputs["kubeconfig"])
    server, command = EXPECTED[stack]
    (cluster,) = config["clusters"]
    assert cluster["cluster"] == {"server": server, "certificate-authority-data": "Q0E="}
    assert config["current-context"] == cluster["name"] == f"ml-platform-{stack}"
    (user,) = config["users"]
    assert user["user"]["exec"]["command"] == command
    assert user["user"]["exec"]["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    if command == "aws":
        assert user["user"]["exec"]["args"][:4] == [
            "eks",
            "get-token",
            "--cluster-name",
            cluster["name"],
        ]
