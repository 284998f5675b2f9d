"""GCP: the three buckets in GCS, reached through GCS's S3-compatible API with an HMAC key.

Why the S3 API on GCS: the DAG library's partition sensor, the trainer, MLflow's artifact
proxy and Airflow's remote logging all speak S3 already (boto3 with an endpoint URL), so
every environment uses one protocol and one kind of credentials Secret.
"""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_gcp as gcp

from ml_infra.config import StackConfig
from ml_infra.resources import StorageAccess, StorageKey
from ml_infra.team_identities import StorageGrant, storage_grants

# legacyBucketReader: buckets.get (the S3 API's GetBucketLocation, which boto3 and MLflow
# call) and objects.list; objects themselves by role, bounded to a prefix by an IAM condition.
BUCKET_ROLE = "roles/storage.legacyBucketReader"
READ_ROLE = "roles/storage.objectViewer"
WRITE_ROLE = "roles/storage.objectUser"
ACCOUNT_ID_MAX = 30  # a GCP service account id: 6-30 characters


def account_id(environment: str, identity: str) -> str:
    """`mlp-<env>-<identity>`, shortened with a hash of the whole where it is too long."""
    wanted = f"mlp-{environment}-{identity}"
    if len(wanted) <= ACCOUNT_ID_MAX:
        return wanted
    digest = hashlib.sha256(wanted.encode()).hexdigest()[:6]
    return f"{wanted[: ACCOUNT_ID_MAX - 7].rstrip('-')}-{digest}"


def prefix_condition(grant: StorageGrant) -> dict[str, str] | None:
    """The IAM condition that keeps an object role inside the grant's prefix."""
    if not grant.prefix:
        return None
    objects = f"projects/_/buckets/{grant.bucket}/objects/{grant.prefix}"
    return {
        "title": f"under {grant.prefix}",
        "expression": f'resource.name.startsWith("{objects}")',
    }


def declare_gcs_storage(config: StackConfig, opts: pulumi.ResourceOptions) -> StorageAccess:
    """The buckets, and per storage identity a service account with an HMAC key whose roles
    reach only its grants."""
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
    keys = {}
    for identity, grants in storage_grants(config).items():
        account = gcp.serviceaccount.Account(
            f"storage-{identity}",
            account_id=account_id(config.environment, identity),
            display_name=f"ML platform storage: {identity} (S3 API)",
            opts=opts,
        )
        member = account.email.apply(lambda email: f"serviceAccount:{email}")
        # (bucket, role, condition): one binding each (two alike would undo each other).
        bindings = {(grant.bucket, BUCKET_ROLE, None): None for grant in grants}
        for grant in grants:
            role = WRITE_ROLE if grant.write else READ_ROLE
            bindings[(grant.bucket, role, grant.prefix)] = prefix_condition(grant)
        for index, ((bucket, role, _), condition) in enumerate(bindings.items()):
            gcp.storage.BucketIAMMember(
                f"storage-{identity}-{index}-{role.rsplit('.', 1)[-1]}",
                bucket=buckets[bucket].name,
                role=role,
                member=member,
                condition=condition,
                opts=opts,
            )
        key = gcp.storage.HmacKey(
            f"storage-{identity}", service_account_email=account.email, opts=opts
        )
        keys[identity] = StorageKey(
            pulumi.Output.secret(key.access_id), pulumi.Output.secret(key.secret)
        )
    return StorageAccess(keys, ready=list(buckets.values()))
