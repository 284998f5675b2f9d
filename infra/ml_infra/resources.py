"""What one part of the program hands to the next: the cluster, storage and database."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class ClusterAccess:
    provider: k8s.Provider
    # Resources that must exist before workloads are installed (node pools, GPU plugins).
    ready: list[pulumi.Resource] = field(default_factory=list)
    # The only addresses pods reach object storage at (cloud clusters: what the network
    # routes privately to S3 / GCS); None on kind, where storage runs in the cluster.
    storage_cidrs: pulumi.Output[list[str]] | None = None


@dataclass(frozen=True)
class StorageKey:
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]


@dataclass(frozen=True)
class StorageAccess:
    # One key per storage identity (ml_infra.team_identities.storage_grants), each reaching
    # only what that identity is granted.
    keys: dict[str, StorageKey]
    ready: list[pulumi.Resource] = field(default_factory=list)


@dataclass(frozen=True)
class DatabaseServer:
    host: pulumi.Output[str] | str
    port: int
    admin_user: str
    sslmode: str  # what clients ask for: "require" for managed servers
    ready: list[pulumi.Resource] = field(default_factory=list)
