"""Bad: a container task that runs privileged (an Airflow DAG file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG
from kubernetes.client import models as k8s

from ml_platform.container import container_task

with DAG(
    dag_id="bad_privileged_pod",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    container_task(  # expect: MLP202
        "validate",
        image="trainer",
        arguments=["validate"],
        container_security_context=k8s.V1SecurityContext(privileged=True),
    )
