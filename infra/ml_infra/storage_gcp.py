"""GCP: the three buckets in GCS, reached as gs:// with Workload Identity: no key exists.

Per storage identity a GCP service account holds bucket roles bounded to the identity's grants
by IAM conditions, and only the identity's Kubernetes service accounts may act as it
(roles/iam.workloadIdentityUser for `<project>.svc.id.goog[<namespace>/<name>]`). GKE's
metadata server hands their pods short-lived tokens of that account, which Google's client
libraries (pyarrow's GCS filesystem, google-cloud-storage in MLflow, Airflow's GCS log handler)
pick up by default.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from ml_infra.config import StackConfig
from ml_infra.resources import StorageAccess
from ml_infra.team_identities import (
    StorageGrant,
    cloud_identity_name,
    storage_grants,
    storage_service_accounts,
)

# legacyBucketReader: buckets.get and objects.list (listing a prefix is a bucket-level call);
# objects themselves by role, bounded to a prefix by an IAM condition.
BUCKET_ROLE = "roles/storage.legacyBucketReader"
READ_ROLE = "roles/storage.objectViewer"
WRITE_ROLE = "roles/storage.objectUser"
WORKLOAD_IDENTITY_ROLE = "roles/iam.workloadIdentityUser"
ACCOUNT_ID_MAX = 30  # a GCP service account id: 6-30 characters


def account_id(environment: str, identity: str) -> str:
    """`mlp-<env>-<identity>`, shortened with a hash of the whole where it is too long."""
    return cloud_identity_name(f"mlp-{environment}-{identity}", ACCOUNT_ID_MAX)


def prefix_condition(grant: StorageGrant) -> dict[str, str] | None:
    """The IAM condition that keeps an object role inside the grant's prefix."""
    if not grant.prefix:
        return None
    objects = f"projects/_/buckets/{grant.bucket}/objects/{grant.prefix}"
    return {
        "title": f"under {grant.prefix}",
        "expression": f'resource.name.startsWith("{objects}")',
    }


def workload_members(workload_pool: str, accounts: list[tuple[str, str]]) -> list[str]:
    """The IAM members of Kubernetes service accounts (namespace, name) in the pool."""
    return sorted(f"serviceAccount:{workload_pool}[{ns}/{name}]" for ns, name in accounts)


def declare_gcs_storage(
    config: StackConfig, workload_pool: pulumi.Output[str], opts: pulumi.ResourceOptions
) -> StorageAccess:
    """The buckets, and per storage identity a service account whose roles reach only its
    grants and that only the identity's Kubernetes service accounts may act as.
    `workload_pool` is the cluster's (it exists once the cluster does: the bindings that
    name it are created after)."""
    names = config.storage.buckets
    buckets = {
        name: gcp.storage.Bucket(
            name,
            name=name,
            location=config.gcp.region.upper(),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            opts=opts,
        )
        for name in (names.datasets, names.artifacts, names.logs)
    }
    users = storage_service_accounts(config)
    accounts = {}
    ready: list[pulumi.Resource] = list(buckets.values())
    for identity, grants in storage_grants(config).items():
        account = gcp.serviceaccount.Account(
            f"storage-{identity}",
            account_id=account_id(config.environment, identity),
            display_name=f"ML platform storage: {identity} (Workload Identity)",
            opts=opts,
        )
        member = account.email.apply(lambda email: f"serviceAccount:{email}")
        # (bucket, role, condition): one binding each (two alike would undo each other).
        bindings = {(grant.bucket, BUCKET_ROLE, None): None for grant in grants}
        for grant in grants:
            role = WRITE_ROLE if grant.write else READ_ROLE
            bindings[(grant.bucket, role, grant.prefix)] = prefix_condition(grant)
        for index, ((bucket, role, _), condition) in enumerate(bindings.items()):
            ready.append(
                gcp.storage.BucketIAMMember(
                    f"storage-{identity}-{index}-{role.rsplit('.', 1)[-1]}",
                    bucket=buckets[bucket].name,
                    role=role,
                    member=member,
                    condition=condition,
                    opts=opts,
                )
            )
        # Authoritative for the role on this account: no other principal keeps it.
        ready.append(
            gcp.serviceaccount.IAMBinding(
                f"storage-{identity}-workload-identity",
                service_account_id=account.name,
                role=WORKLOAD_IDENTITY_ROLE,
                members=workload_pool.apply(
                    lambda pool, wanted=users[identity]: workload_members(pool, wanted)
                ),
                opts=opts,
            )
        )
        accounts[identity] = account.email
    return StorageAccess(gcp_accounts=accounts, ready=ready)
