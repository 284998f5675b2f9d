"""What one part of the program hands to the next: the cluster, storage and database."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

# EKS's pod identity webhook gives pods of an annotated service account a web identity token
# and AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE, which the SDKs' default chains use.
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
# Pods reach STS only at its regional name, which the VPC's interface endpoint answers: ask
# the webhook for AWS_STS_REGIONAL_ENDPOINTS=regional whatever the cluster's default.
IRSA_REGIONAL_STS_ANNOTATION = "eks.amazonaws.com/sts-regional-endpoints"


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
    # Per storage identity (ml_infra.team_identities.storage_grants) either a key (kind, GCP)
    # or the ARN of an IAM role its service accounts assume (AWS, IRSA), each reaching only
    # what that identity is granted.
    keys: dict[str, StorageKey] = field(default_factory=dict)
    role_arns: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    ready: list[pulumi.Resource] = field(default_factory=list)

    def key(self, identity: str) -> StorageKey | None:
        """The identity's key; None where it has a role instead (every identity has one)."""
        if identity in self.role_arns:
            return None
        return self.keys[identity]

    def role_annotations(self, identity: str) -> dict[str, pulumi.Output[str]]:
        """The service account annotations that let EKS hand a pod the identity's role, from
        the regional STS endpoint."""
        if identity not in self.role_arns:
            return {}
        return {
            IRSA_ROLE_ANNOTATION: self.role_arns[identity],
            IRSA_REGIONAL_STS_ANNOTATION: "true",
        }


@dataclass(frozen=True)
class DatabaseServer:
    host: pulumi.Output[str] | str
    port: int
    admin_user: str
    sslmode: str  # what clients ask for: "require" for managed servers
    ready: list[pulumi.Resource] = field(default_factory=list)
