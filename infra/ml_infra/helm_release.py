"""One way to install a pinned chart as a Helm release."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ml_infra.charts import Chart


def helm_release(
    resource_name: str,
    chart: Chart,
    *,
    release_name: str,
    namespace: str,
    values: Any,
    provider: k8s.Provider,
    depends_on: Sequence[pulumi.Resource] = (),
    timeout_s: int = 900,
) -> k8s.helm.v3.Release:
    """A Helm release with a fixed name (its Services get predictable names) that waits for
    its workloads, so what depends on it starts against a running service."""
    if chart.is_oci:
        source: dict[str, Any] = {"chart": f"{chart.repo}/{chart.name}"}
    else:
        source = {
            "chart": chart.name,
            "repository_opts": k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
        }
    return k8s.helm.v3.Release(
        resource_name,
        name=release_name,
        namespace=namespace,
        version=chart.version,
        values=values,
        create_namespace=False,
        atomic=True,
        cleanup_on_fail=True,
        wait_for_jobs=True,
        timeout=timeout_s,
        opts=pulumi.ResourceOptions(provider=provider, depends_on=list(depends_on)),
        **source,
    )
