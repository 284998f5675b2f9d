"""Small helpers for declaring Kubernetes objects with the stack's provider."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

PART_OF = {"app.kubernetes.io/part-of": "ml-platform"}


def k8s_opts(
    provider: k8s.Provider, depends_on: Sequence[pulumi.Resource] = ()
) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(provider=provider, depends_on=list(depends_on))


def metadata(
    name: str, namespace: str | None = None, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**PART_OF, **(labels or {})}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def secret(
    resource_name: str,
    name: str,
    namespace: str,
    data: Mapping[str, Any],
    provider: k8s.Provider,
    depends_on: Sequence[pulumi.Resource] = (),
) -> k8s.core.v1.Secret:
    """An Opaque Secret whose values are Pulumi secrets (encrypted in the state)."""
    return k8s.core.v1.Secret(
        resource_name,
        metadata=metadata(name, namespace),
        type="Opaque",
        string_data={key: pulumi.Output.secret(value) for key, value in data.items()},
        opts=k8s_opts(provider, depends_on),
    )


def kubeconfig(name: str, server: str, ca_data: str, exec_user: dict[str, Any]) -> str:
    """A one-cluster kubeconfig whose user authenticates with a client-go exec plugin."""
    exec_user = {"apiVersion": "client.authentication.k8s.io/v1beta1", **exec_user}
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [{"name": name, "user": {"exec": exec_user}}],
        }
    )
