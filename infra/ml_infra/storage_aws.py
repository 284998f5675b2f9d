"""AWS: the three buckets in S3, and per storage identity an IAM user whose key reaches only
its grants (a bucket, or a prefix of one)."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from ml_infra.config import StackConfig
from ml_infra.resources import StorageAccess, StorageKey
from ml_infra.team_identities import StorageGrant, storage_grants


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


def declare_s3_storage(config: StackConfig, opts: pulumi.ResourceOptions) -> StorageAccess:
    """The buckets, and one IAM user per storage identity with a policy of its grants only."""
    names = config.storage.buckets
    buckets = [_bucket(name, opts) for name in (names.datasets, names.artifacts, names.logs)]
    # The policies name the buckets by ARN: created after them.
    after = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=buckets))
    keys = {}
    for name, grants in storage_grants(config).items():
        user = aws.iam.User(
            f"storage-{name}", name=f"ml-platform-{config.environment}-{name}", opts=opts
        )
        aws.iam.UserPolicy(
            f"storage-{name}", user=user.name, policy=identity_policy(grants), opts=after
        )
        key = aws.iam.AccessKey(f"storage-{name}", user=user.name, opts=opts)
        keys[name] = StorageKey(pulumi.Output.secret(key.id), pulumi.Output.secret(key.secret))
    return StorageAccess(keys, ready=buckets)
