"""Good: GPU work pinned to the production GPU type (an Airflow DAG file).

Dev and prod run it on their nvidia-l4 pools; kind on its emulated GPUs, which stand in for
that type (gpu.stands_in_for of the kind stack). Once through the factory, once the textbook
way with a nodeSelector on the platform's GPU type label (pod_mutation_hook points it at the
stand-in's label on kind).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG
from kubernetes.client import models as k8s

from ml_platform.container import container_task
from ml_platform.settings import platform_config

GPU_TYPE = "nvidia-l4"
SIZE = {"cpu": "1", "memory": "2Gi"}

with DAG(
    dag_id="good_production_gpu_type",
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"owner": "fraud", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["fixture"],
):
    container_task("train", image="trainer", arguments=["train"], gpus=1, gpu_type=GPU_TYPE)
    KubernetesPodOperator(
        task_id="train_textbook",
        image=platform_config().images.ref("trainer"),  # each stack's own registry
        arguments=["train"],
        node_selector={"ml-platform/gpu-type": GPU_TYPE},
        container_resources=k8s.V1ResourceRequirements(
            requests=SIZE, limits={**SIZE, "nvidia.com/gpu": "1"}
        ),
    )
