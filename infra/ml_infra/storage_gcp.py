"""GCP: the three buckets in GCS, reached through GCS's S3-compatible API with an HMAC key.

Why the S3 API on GCS: the DAG library's partition sensor, the trainer, MLflow's artifact
proxy and Airflow's remote logging all speak S3 already (boto3 with an endpoint URL), so
every environment uses one protocol and one kind of credentials Secret.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from ml_infra.config import StackConfig
from ml_infra.resources import StorageAccess

# objectAdmin covers objects; legacyBucketReader adds buckets.get, which the S3 API's
# GetBucketLocation (called by boto3 and MLflow) needs.
BUCKET_ROLES = ("roles/storage.objectAdmin", "roles/storage.legacyBucketReader")


def declare_gcs_storage(config: StackConfig, opts: pulumi.ResourceOptions) -> StorageAccess:
    names = config.storage.buckets
    account = gcp.serviceaccount.Account(
        "storage-access",
        account_id=f"ml-platform-{config.environment}-storage",
        display_name="ML platform storage access (S3 API)",
        opts=opts,
    )
    member = account.email.apply(lambda email: f"serviceAccount:{email}")
    buckets = []
    for name in (names.datasets, names.artifacts, names.logs):
        bucket = gcp.storage.Bucket(
            name,
            name=name,
            location=config.gcp.region.upper(),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            opts=opts,
        )
        for role in BUCKET_ROLES:
            gcp.storage.BucketIAMMember(
                f"{name}-{role.rsplit('.', 1)[-1]}",
                bucket=bucket.name,
                role=role,
                member=member,
                opts=opts,
            )
        buckets.append(bucket)
    key = gcp.storage.HmacKey("storage-access", service_account_email=account.email, opts=opts)
    return StorageAccess(
        access_key_id=pulumi.Output.secret(key.access_id),
        secret_access_key=pulumi.Output.secret(key.secret),
        ready=buckets,
    )
