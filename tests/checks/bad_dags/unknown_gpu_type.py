"""Bad: asks for a GPU type that no pool of the stack offers (an Airflow DAG file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from ml_platform.container import container_task

with DAG(
    dag_id="bad_unknown_gpu_type",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    container_task(  # expect: MLP301
        "train",
        image="trainer",
        arguments=["train"],
        gpus=1,
        gpu_type="nvidia-h100-80gb",
    )
