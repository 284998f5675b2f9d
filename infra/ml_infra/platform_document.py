"""The ML_PLATFORM_CONFIG document: what the DAG library needs to know about a stack.

Same schema as dags/ml_platform/platform.kind.json (parsed by ml_platform.settings), computed
from the stack config and the repository's model specs alone, so it is known before anything
is created and the kind stack's document can be compared with that file.
"""

from __future__ import annotations

from typing import Any

from ml_infra.config import Pool, StackConfig
from ml_infra.endpoints import mlflow_url, storage_endpoint, storage_scheme
from ml_infra.notifications import notifications_document
from ml_infra.team_identities import has_storage_secrets, team_identities


def _gpu(pool: Pool) -> dict[str, Any] | None:
    if not pool.gpu:
        return None
    gpu: dict[str, Any] = {"type": pool.gpu.type, "count": pool.gpu.count}
    if pool.gpu.stands_in_for:  # kind only; cloud documents stay as they were
        gpu["stands_in_for"] = list(pool.gpu.stands_in_for)
    return gpu


def airflow_pool_name(pool: Pool) -> str:
    """The Airflow pool a GPU node pool's tasks take their GPUs from."""
    return f"{pool.name}-gpus"


def airflow_pools(config: StackConfig) -> dict[str, dict[str, Any]]:
    """One Airflow pool per GPU node pool, in `airflow pools import` form: as many slots as
    the node pool ever has GPUs, at most the training namespace's GPU quota. A GPU task takes
    a slot per GPU, so a sweep larger than the nodes waits queued in Airflow rather than as
    Pending (or quota-refused) pods. Deferred tasks count: a deferrable pod task's pod runs
    while the task is deferred."""
    return {
        airflow_pool_name(pool): {
            "slots": min(pool.gpu.count * pool.max_nodes, config.training_gpu_quota),
            "description": f"GPUs of node pool {pool.name} ({pool.gpu.count}x {pool.gpu.type})",
            "include_deferred": True,
        }
        for pool in config.pools
        if pool.gpu
    }


def _pool(pool: Pool) -> dict[str, Any]:
    return {
        "name": pool.name,
        "labels": dict(pool.labels),
        "taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in pool.taints],
        "gpu": _gpu(pool),
        "node_allocatable": dict(pool.node_allocatable),
        "max_nodes": pool.max_nodes,
        "airflow_pool": airflow_pool_name(pool) if pool.gpu else None,
    }


def platform_document(config: StackConfig) -> dict[str, Any]:
    buckets = config.storage.buckets
    scheme = storage_scheme(config)
    storage = {
        "datasets_uri": f"{scheme}://{buckets.datasets}",
        "artifacts_uri": f"{scheme}://{buckets.artifacts}",
        "logs_uri": f"{scheme}://{buckets.logs}",
        "airflow_connection": config.storage.airflow_connection,
    }
    endpoint = storage_endpoint(config)
    if endpoint:
        storage["endpoint_url"] = endpoint
    document = {
        "environment": config.environment,
        "namespaces": dict(config.namespaces),
        "service_accounts": dict(config.service_accounts),
        "images": {
            "registry": config.images.registry,
            "tag": config.images.tag,
            "pull_policy": config.images.pull_policy,
            "names": dict(config.images.names),
        },
        "mlflow": {"tracking_uri": mlflow_url(config)},
        # Each team's identities; the DAG library gives a team's pods its own (task_policy).
        "teams": {
            identity.team: identity.document(has_storage_secrets(config))
            for identity in team_identities(config)
        },
        "storage": storage,
        "pools": [_pool(pool) for pool in config.pools],
        # Created by the program (ml_infra.airflow_pools) and by the local runtime.
        "airflow_pools": airflow_pools(config),
        "limits": {
            "max_sweep_combinations": config.max_sweep_combinations,
            "gpu_quota": config.training_gpu_quota,  # the training namespace's ResourceQuota
        },
    }
    notifications = notifications_document(config)
    if notifications:  # the channels the DAGs report to; no credential (ml_infra.notifications)
        document["notifications"] = notifications
    return document
