"""Bad: the schedule is left to Airflow's default (an Airflow DAG file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from ml_platform.container import container_task

with DAG(  # noqa: AIR002  # expect: MLP104
    dag_id="bad_no_schedule",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    container_task("validate", image="trainer", arguments=["validate"])
