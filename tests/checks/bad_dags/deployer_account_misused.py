"""Bad: a task that runs as the deployer account to deploy for another team (an Airflow DAG
file): only the platform's deploy step, for its own team's models, may use that account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from ml_platform.container import container_task

with DAG(
    dag_id="bad_deployer_account_misused",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    container_task(  # expect: MLP206
        "replace_their_model",
        image="deployer",
        service_account="deployer",
        arguments=["deploy", "--run-id", "0123", "--model-name", "card-risk"],
        env={"DEPLOYER_TEAM": "risk"},
    )
