"""A Job that creates Airflow's GPU pools: one per GPU node pool, a slot per GPU it ever has.

The pools are the platform document's `airflow_pools` (ml_infra.platform_document), which
the DAG library's task_policy assigns GPU tasks to (ml_platform.airflow_pools); the Job runs
`airflow pools import` with the Airflow image against the metadata database once the release
is up (it has migrated the database). The pods template carries the pools, so a change of
pools re-runs it; import creates or resizes, and leaves other pools alone.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s

from ml_infra.config import StackConfig
from ml_infra.jobs import one_shot_job_spec, restricted_container
from ml_infra.kube import k8s_opts, metadata
from ml_infra.platform_document import airflow_pools
from ml_infra.platform_secrets import AIRFLOW_METADATA_SECRET

JOB_NAME = "airflow-gpu-pools"
POOLS_KEY = "pools.json"
AIRFLOW_UID = 50000  # the official image's user (helm/airflow/values-common.yaml)


def declare_airflow_pools(
    config: StackConfig, provider: k8s.Provider, depends_on: list[pulumi.Resource]
) -> k8s.batch.v1.Job | None:
    """The pools Job in the airflow namespace; None on a stack without GPU pools."""
    pools = airflow_pools(config)
    if not pools:
        return None
    ns = config.namespaces["airflow"]
    document = json.dumps(pools, indent=2, sort_keys=True)
    pools_map = k8s.core.v1.ConfigMap(
        JOB_NAME,
        metadata=metadata(JOB_NAME, ns),
        data={POOLS_KEY: document},
        opts=k8s_opts(provider, depends_on),
    )
    airflow = config.airflow
    database_url = {"secretKeyRef": {"name": AIRFLOW_METADATA_SECRET, "key": "connection"}}
    container = restricted_container(
        name="pools",
        image=f"{airflow.image_repository}:{airflow.image_tag}",
        args=["airflow", "pools", "import", f"/pools/{POOLS_KEY}"],
        env=[
            {"name": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "valueFrom": database_url},
            # The root filesystem is read-only: Airflow's home is scratch.
            {"name": "AIRFLOW_HOME", "value": "/tmp/airflow"},
        ],
        volumeMounts=[
            {"name": "pools", "mountPath": "/pools", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        resources={"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    )
    spec = one_shot_job_spec(
        uid=AIRFLOW_UID,
        gid=0,
        labels={"app.kubernetes.io/name": JOB_NAME},
        annotations={"ml-platform/pools": json.dumps(pools, sort_keys=True)},
        containers=[container],
        volumes=[
            {"name": "pools", "configMap": {"name": JOB_NAME}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "100Mi"}},
        ],
    )
    return k8s.batch.v1.Job(
        JOB_NAME,
        metadata=metadata(JOB_NAME, ns),
        spec=spec,
        opts=k8s_opts(provider, [pools_map, *depends_on]),
    )
