"""Bad: mounts the node's Docker socket through a hostPath volume (an Airflow DAG file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG
from kubernetes.client import models as k8s

from ml_platform.container import container_task

DOCKER_SOCKET = k8s.V1Volume(
    name="docker-socket",
    host_path=k8s.V1HostPathVolumeSource(path="/var/run/docker.sock"),
)

with DAG(
    dag_id="bad_host_path_volume",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    container_task(  # expect: MLP203
        "validate",
        image="trainer",
        arguments=["validate"],
        volumes=[DOCKER_SOCKET],
    )
