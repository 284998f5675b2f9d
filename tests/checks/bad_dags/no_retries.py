"""Bad: default_args without retries (an Airflow DAG file)."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG

from ml_platform.container import container_task

DAG_ID = "bad_no_retries"

with DAG(  # expect: MLP103
    dag_id=DAG_ID,
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud"},
    tags=["fixture"],
):
    container_task("validate", image="trainer", arguments=["validate"])
