"""Bad: an image from Docker Hub, not the platform registry (an Airflow DAG file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from kubernetes.client import models as k8s

SIZE = {"cpu": "1", "memory": "1Gi"}

with DAG(
    dag_id="bad_foreign_registry",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    KubernetesPodOperator(  # expect: MLP205
        task_id="score",
        image="docker.io/library/python:3.11-slim",
        cmds=["python", "-c", "print('scored')"],
        container_resources=k8s.V1ResourceRequirements(requests=SIZE, limits=SIZE),
    )
