"""Bad: a task that mounts another team's credentials (an Airflow DAG file): any pod in the
training namespace could reference any Secret there, so the platform refuses a team's task
that names another team's MLflow login or storage key (this file's team is the platform's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from ml_platform.container import container_task

with DAG(
    dag_id="bad_other_teams_credentials",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    container_task(  # expect: MLP207
        "read_their_data",
        image="trainer",
        arguments=["validate", "--data-uri", "s3://ml-datasets/teams/examples/wine/daily/x"],
        secrets=["team-examples-storage"],
    )
    container_task(  # expect: MLP207
        "run_as_them",
        image="trainer",
        arguments=["validate", "--data-uri", "s3://ml-datasets/daily/x"],
        service_account_name="team-examples",
    )
