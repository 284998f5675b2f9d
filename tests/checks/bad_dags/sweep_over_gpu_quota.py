"""Bad: a GPU sweep running more trials at once than the training GPU quota admits.

Four trials, all at once, one GPU each: the kind and dev stacks' quota is 2 GPUs, so two pods
are refused at creation (an Airflow DAG file).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from kubernetes.client import models as k8s

SIZE = {"cpu": "1", "memory": "2Gi"}

with DAG(
    dag_id="bad_sweep_over_gpu_quota",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    KubernetesPodOperator.partial(  # expect: MLP303
        task_id="train",
        image="localhost/ml-platform/trainer:dev",
        container_resources=k8s.V1ResourceRequirements(
            requests=SIZE, limits={**SIZE, "nvidia.com/gpu": "1"}
        ),
        max_active_tis_per_dagrun=4,
    ).expand(arguments=[["train", f"--learning-rate={lr}"] for lr in (0.1, 0.03, 0.01, 0.003)])
