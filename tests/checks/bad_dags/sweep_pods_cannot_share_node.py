"""Bad: two trials at once whose pods cannot share the GPU node (an Airflow DAG file).

Each asks for 3 CPUs: kind's one GPU node has 4, so the second trial waits Pending while
its node's second GPU stays idle.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, task

from ml_platform.container import mapped_container_task


@task
def trials() -> list[list[str]]:
    return [["train", f"--learning-rate={lr}"] for lr in (0.1, 0.01)]


with DAG(
    dag_id="bad_sweep_pods_cannot_share_node",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    mapped_container_task(  # expect: MLP303
        "train",
        image="trainer",
        arguments=trials(),
        gpus=1,
        cpu="3",
        memory="2Gi",
        max_parallel=2,
    )
