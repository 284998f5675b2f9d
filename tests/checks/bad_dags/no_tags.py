"""Bad: no tags (an Airflow DAG file, with the @dag decorator)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag

from ml_platform.container import container_task


@dag(  # expect: MLP102
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
)
def bad_no_tags() -> None:
    container_task("validate", image="trainer", arguments=["validate"])


bad_no_tags()
