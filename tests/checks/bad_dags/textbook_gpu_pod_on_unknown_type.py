"""Bad: a raw GPU pod pinned by nodeSelector to a GPU type no pool has (an Airflow DAG file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from kubernetes.client import models as k8s

SIZE = {"cpu": "1", "memory": "1Gi"}

with DAG(
    dag_id="bad_textbook_gpu_pod_on_unknown_type",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    KubernetesPodOperator(  # expect: MLP301
        task_id="train",
        image="localhost/ml-platform/trainer:dev",
        arguments=["train"],
        node_selector={"ml-platform/gpu-type": "nvidia-a100"},
        container_resources=k8s.V1ResourceRequirements(
            requests=SIZE, limits={**SIZE, "nvidia.com/gpu": "1"}
        ),
    )
