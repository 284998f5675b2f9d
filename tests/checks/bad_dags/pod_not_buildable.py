"""Bad: a mapped container task sized at run time, so its pod cannot be checked (a DAG file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, task
from kubernetes.client import models as k8s

from ml_platform.container import PlatformPodOperator, container_task_kwargs

SIZE = {"cpu": "1", "memory": "1Gi"}

with DAG(
    dag_id="bad_pod_not_buildable",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):

    @task
    def sizes() -> list[k8s.V1ResourceRequirements]:
        return [k8s.V1ResourceRequirements(requests=SIZE, limits=SIZE)]

    kwargs = container_task_kwargs(image="trainer", arguments=["validate"])
    kwargs.pop("container_resources")
    PlatformPodOperator.partial(task_id="validate", **kwargs).expand(  # expect: MLP302
        container_resources=sizes()
    )
