"""AWS: the three buckets in S3, and per storage identity an IAM role that reaches only its
grants (a bucket, or a prefix of one) and that only the identity's Kubernetes service accounts
may assume (IRSA): no long-lived key exists to leak or rotate."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from ml_infra.cluster_eks import service_account_role
from ml_infra.config import StackConfig
from ml_infra.resources import StorageAccess
from ml_infra.team_identities import (
    StorageGrant,
    cloud_identity_name,
    storage_grants,
    storage_service_accounts,
)

ROLE_NAME_MAX = 64  # IAM's limit on a role's name


def role_name(environment: str, identity: str) -> str:
    """`ml-platform-<env>-<identity>`, shortened with a hash of the whole where too long."""
    return cloud_identity_name(f"ml-platform-{environment}-{identity}", ROLE_NAME_MAX)


def _bucket(name: str, opts: pulumi.ResourceOptions) -> aws.s3.Bucket:
    bucket = aws.s3.Bucket(name, bucket=name, opts=opts)
    aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        name,
        bucket=bucket.id,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
        opts=opts,
    )
    return bucket


def identity_policy(grants: list[StorageGrant]) -> str:
    """An IAM policy that reaches exactly the grants: list per bucket, objects by prefix."""
    buckets = sorted({f"arn:aws:s3:::{grant.bucket}" for grant in grants})
    statements = [
        {
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": buckets,
        }
    ]
    for write in (False, True):
        objects = [
            f"arn:aws:s3:::{grant.bucket}/{grant.prefix}*"
            for grant in grants
            if grant.write == write
        ]
        if objects:
            actions = ["s3:GetObject", *(["s3:PutObject", "s3:DeleteObject"] if write else [])]
            actions += ["s3:AbortMultipartUpload"] if write else []
            statements.append({"Effect": "Allow", "Action": actions, "Resource": objects})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def declare_s3_storage(
    config: StackConfig, oidc: aws.iam.OpenIdConnectProvider, opts: pulumi.ResourceOptions
) -> StorageAccess:
    """The buckets, and one IAM role per storage identity with a policy of its grants only,
    assumable by web identity by the identity's service accounts on this cluster only."""
    names = config.storage.buckets
    buckets = [_bucket(name, opts) for name in (names.datasets, names.artifacts, names.logs)]
    # The policies name the buckets by ARN: created after them.
    after = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=buckets))
    accounts = storage_service_accounts(config)
    role_arns = {}
    for name, grants in storage_grants(config).items():
        role = service_account_role(
            f"storage-{name}",
            oidc,
            accounts[name],
            opts,
            role_name=role_name(config.environment, name),
        )
        aws.iam.RolePolicy(
            f"storage-{name}", role=role.id, policy=identity_policy(grants), opts=after
        )
        role_arns[name] = role.arn
    return StorageAccess(role_arns=role_arns, ready=buckets)
