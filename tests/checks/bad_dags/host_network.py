"""Bad: a pod on the node's network namespace (an Airflow DAG file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from ml_platform.container import container_task

with DAG(
    dag_id="bad_host_network",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    container_task(  # expect: MLP204
        "validate",
        image="trainer",
        arguments=["validate"],
        hostnetwork=True,
    )
