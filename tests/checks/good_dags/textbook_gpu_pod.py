"""Good: a raw KubernetesPodOperator asking for a GPU the textbook way (an Airflow DAG file).

It carries no toleration or affinity: the platform's pod_mutation_hook adds those of a GPU
pool, and the checks apply the hook before they decide where the pod fits.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from kubernetes.client import models as k8s

SIZE = {"cpu": "1", "memory": "2Gi"}

with DAG(
    dag_id="good_textbook_gpu_pod",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    KubernetesPodOperator(
        task_id="train",
        image="localhost/ml-platform/trainer:dev",
        arguments=["train"],
        container_resources=k8s.V1ResourceRequirements(
            requests=SIZE, limits={**SIZE, "nvidia.com/gpu": "1"}
        ),
    )
