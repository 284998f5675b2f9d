"""kind: the buckets live in SeaweedFS, an S3-compatible store running in the cluster.

Why SeaweedFS: MinIO's community edition stopped publishing images (Oct 2025) and its
repository was archived (Apr 2026). SeaweedFS is Apache-2.0, actively released (chart and
server versions move weekly), ships an official Helm chart with an all-in-one mode (one pod:
master, volume, filer and S3 gateway) that suits a laptop, and its S3 gateway supports what
boto3, MLflow, Airflow's S3 hook and pyarrow use (signed requests, multipart, listing).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from ml_infra import charts
from ml_infra.config import StackConfig
from ml_infra.endpoints import SEAWEEDFS_RELEASE, SEAWEEDFS_S3_PORT
from ml_infra.helm_release import helm_release
from ml_infra.kube import secret
from ml_infra.resources import StorageAccess, StorageKey
from ml_infra.team_identities import StorageGrant, storage_grants

S3_CONFIG_SECRET = "seaweedfs-s3-config"
DATA_SIZE = "20Gi"


def seaweedfs_actions(grants: list[StorageGrant]) -> list[str]:
    """SeaweedFS actions for an identity's grants.

    SeaweedFS checks `<Action>:<bucket>/<key>` against each action, with a trailing `*` as a
    prefix match; listing is checked on the bucket alone, so List is granted per bucket."""
    actions: list[str] = []
    for grant in grants:
        scope = f"{grant.bucket}/{grant.prefix}*" if grant.prefix else grant.bucket
        wanted = [f"List:{grant.bucket}", f"Read:{scope}"]
        if grant.write:
            wanted += [f"Write:{scope}", f"Tagging:{scope}"]
        actions += [action for action in wanted if action not in actions]
    return actions


def s3_identities(keys: dict[str, Sequence[str]], grants: dict[str, list[StorageGrant]]) -> str:
    """SeaweedFS's S3 config: one identity per storage identity, none of them an admin."""
    return json.dumps(
        {
            "identities": [
                {
                    "name": name,
                    "credentials": [{"accessKey": key_id, "secretKey": secret_key}],
                    "actions": seaweedfs_actions(grants[name]),
                }
                for name, (key_id, secret_key) in keys.items()
            ]
        }
    )


def seaweedfs_values(config: StackConfig) -> dict:
    buckets = config.storage.buckets
    # Pod Security Standard `restricted`. The chart sets a pod's and a container's
    # securityContext only from `<component>.podSecurityContext` / `.containerSecurityContext`
    # with `enabled: true` (the rest of the map is the context). The image's own user is
    # seaweed, 1000:1000: its entrypoint only steps down to it from root, and the chart's
    # all-in-one command skips the entrypoint, so without these the pod runs as root. The
    # servers listen on ports above 1024; fsGroup lets the user write the /data volume.
    pod_context = {
        "enabled": True,
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container_context = {
        "enabled": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    return {
        # All-in-one: one pod instead of the master/volume/filer/S3 StatefulSets.
        "master": {"enabled": False},
        "volume": {"enabled": False},
        # The filer's StatefulSet is off, but the post-install Job that creates the buckets
        # (templates/shared/post-install-bucket-hook.yaml) takes the filer's contexts.
        "filer": {
            "enabled": False,
            "podSecurityContext": pod_context,
            "containerSecurityContext": container_context,
        },
        "allInOne": {
            "enabled": True,
            "podSecurityContext": pod_context,
            "containerSecurityContext": container_context,
            "data": {"type": "persistentVolumeClaim", "size": DATA_SIZE},
            "s3": {
                "enabled": True,
                "port": SEAWEEDFS_S3_PORT,
                "enableAuth": True,
                "existingConfigSecret": S3_CONFIG_SECRET,
                "createBuckets": [
                    {"name": name} for name in (buckets.datasets, buckets.artifacts, buckets.logs)
                ],
            },
        },
    }


def _key(name: str) -> StorageKey:
    access_key = random.RandomPassword(f"seaweedfs-{name}-access-key", length=20, special=False)
    secret_key = random.RandomPassword(f"seaweedfs-{name}-secret-key", length=40, special=False)
    return StorageKey(
        pulumi.Output.secret(access_key.result), pulumi.Output.secret(secret_key.result)
    )


def declare_kind_storage(
    config: StackConfig, provider: k8s.Provider, namespace: pulumi.Resource
) -> StorageAccess:
    grants = storage_grants(config)
    keys = {name: _key(name) for name in grants}
    pairs = {
        name: pulumi.Output.all(key.access_key_id, key.secret_access_key)
        for name, key in keys.items()
    }
    document = pulumi.Output.all(**pairs).apply(lambda resolved: s3_identities(resolved, grants))
    s3_config = secret(
        "seaweedfs-s3-config",
        S3_CONFIG_SECRET,
        config.namespaces["storage"],
        {"seaweedfs_s3_config": document},
        provider,
        depends_on=[namespace],
    )
    release = helm_release(
        "seaweedfs",
        charts.SEAWEEDFS,
        release_name=SEAWEEDFS_RELEASE,
        namespace=config.namespaces["storage"],
        values=seaweedfs_values(config),
        provider=provider,
        depends_on=[namespace, s3_config],
    )
    return StorageAccess(keys, ready=[release])
