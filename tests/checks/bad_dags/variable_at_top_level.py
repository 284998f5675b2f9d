"""Bad: reads a Variable at module top level, on every parse (an Airflow DAG file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Variable

from ml_platform.container import container_task

MIN_ROWS = Variable.get("fraud_min_rows", default="100")  # expect: MLP106

with DAG(
    dag_id="bad_variable_at_top_level",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    container_task("validate", image="trainer", arguments=["validate", "--min-rows", MIN_ROWS])
