"""Bad: a raw KubernetesPodOperator with requests but no limits (an Airflow DAG file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from kubernetes.client import models as k8s

with DAG(
    dag_id="bad_raw_kpo_without_limits",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    KubernetesPodOperator(  # expect: MLP201
        task_id="score",
        image="localhost/ml-platform/trainer:dev",
        arguments=["validate"],
        container_resources=k8s.V1ResourceRequirements(requests={"cpu": "1", "memory": "1Gi"}),
    )
