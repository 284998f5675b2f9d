"""AWS: the three buckets in S3 and an IAM user whose keys reach exactly those buckets."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from ml_infra.config import StackConfig
from ml_infra.resources import StorageAccess


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


def bucket_policy(bucket_arns: list[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                    "Resource": bucket_arns,
                },
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": [f"{arn}/*" for arn in bucket_arns],
                },
            ],
        }
    )


def declare_s3_storage(config: StackConfig, opts: pulumi.ResourceOptions) -> StorageAccess:
    names = config.storage.buckets
    buckets = [_bucket(name, opts) for name in (names.datasets, names.artifacts, names.logs)]
    user = aws.iam.User(f"ml-platform-{config.environment}-storage", opts=opts)
    aws.iam.UserPolicy(
        "storage-access",
        user=user.name,
        policy=pulumi.Output.all(*[b.arn for b in buckets]).apply(bucket_policy),
        opts=opts,
    )
    key = aws.iam.AccessKey("storage-access", user=user.name, opts=opts)
    return StorageAccess(
        access_key_id=pulumi.Output.secret(key.id),
        secret_access_key=pulumi.Output.secret(key.secret),
        ready=buckets,
    )
