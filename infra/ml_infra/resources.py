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
# GKE's metadata server gives pods of an annotated service account the access tokens of that
# GCP service account (Workload Identity), which Google's client libraries find by default.
WORKLOAD_IDENTITY_ANNOTATION = "iam.gke.io/gcp-service-account"


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
    # Per storage identity (ml_infra.team_identities.storage_grants) one of: a key (kind), the
    # ARN of an IAM role its service accounts assume (AWS, IRSA), or the email of a GCP
    # service account its service accounts act as (GCP, Workload Identity); each reaches
    # only what that identity is granted.
    keys: dict[str, StorageKey] = field(default_factory=dict)
    role_arns: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    gcp_accounts: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    ready: list[pulumi.Resource] = field(default_factory=list)

    def key(self, identity: str) -> StorageKey | None:
        """The identity's key; None where its pods get it from their service account."""
        if identity in self.role_arns or identity in self.gcp_accounts:
            return None
        return self.keys[identity]

    def identity_annotations(self, identity: str) -> dict[str, pulumi.Output[str] | str]:
        """The service account annotations that let the cluster hand a pod the identity: on
        EKS its role (from the regional STS endpoint), on GKE its GCP service account; none
        where the identity is a key."""
        if identity in self.role_arns:
            return {
                IRSA_ROLE_ANNOTATION: self.role_arns[identity],
                IRSA_REGIONAL_STS_ANNOTATION: "true",
            }
        if identity in self.gcp_accounts:
            return {WORKLOAD_IDENTITY_ANNOTATION: self.gcp_accounts[identity]}
        return {}


@dataclass(frozen=True)
class DatabaseServer:
    host: pulumi.Output[str] | str
    port: int
    admin_user: str
    sslmode: str  # what clients ask for: "require" for managed servers
    ready: list[pulumi.Resource] = field(default_factory=list)
