"""Watch each new partition for drift and the champion for decay; retrain when either crosses.

Computes PSI per feature of the day's partition against the data the champion was trained on,
and the champion's metric on the day's labelled rows. When a feature's PSI reaches
`psi_threshold` or the metric falls below `min_metric`, it triggers `ml_training_pipeline`
for the same day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, task

from ml_contract import SPEC_ENV
from ml_platform.container import container_task
from ml_platform.dag_defaults import platform_default_args
from ml_platform.model_specs import spec_beside
from ml_platform.notifications import run_callbacks
from ml_platform.sensors import wait_for_partition
from ml_platform.settings import platform_config

DAG_ID = "ml_drift_monitor"
TRAINING_DAG_ID = "ml_training_pipeline"
PARTITION_URI = platform_config().datasets_uri + "/daily/{{ ds }}"
# The churn model's contract: the monitor reads the partition the way training does.
SPEC = spec_beside(__file__, "churn_classifier")


with DAG(
    dag_id=DAG_ID,
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=platform_default_args(
        owner="ml-platform", execution_timeout=timedelta(minutes=30)
    ),
    tags=["ml", "monitoring"],
    doc_md=__doc__,
    # Every run's end on the stack's channels: the drift report, or what failed and why.
    **run_callbacks(summary_task="check_drift"),
    params={
        "model_name": Param("churn-classifier", type="string", minLength=1),
        "metric": Param("roc_auc", enum=["roc_auc", "accuracy", "f1"]),
        "psi_threshold": Param(0.2, type="number", exclusiveMinimum=0),
        "min_metric": Param(0.7, type="number"),
    },
) as dag:
    wait_for_data = wait_for_partition(
        "wait_for_data",
        PARTITION_URI,
        poke_interval=timedelta(minutes=5),
        timeout=timedelta(hours=6),
    )

    check_drift = container_task(
        "check_drift",
        image="trainer",
        arguments=[
            "monitor",
            "--current-uri",
            PARTITION_URI,
            "--model-name",
            "{{ params.model_name }}",
            "--metric",
            "{{ params.metric }}",
            "--psi-threshold",
            "{{ params.psi_threshold }}",
            "--min-metric",
            "{{ params.min_metric }}",
        ],
        memory="2Gi",
        env={SPEC_ENV: SPEC.to_json()},
    )

    @task.short_circuit
    def needs_retraining(report: dict[str, Any]) -> bool:
        print(report["reason"])
        return report["should_retrain"]

    trigger_training = TriggerDagRunOperator(
        task_id="trigger_training",
        trigger_dag_id=TRAINING_DAG_ID,
        trigger_run_id="drift__{{ ds }}__{{ ts_nodash }}",
        logical_date="{{ logical_date }}",
        conf={"model_name": "{{ params.model_name }}"},
        wait_for_completion=False,
    )

    wait_for_data >> check_drift
    needs_retraining(check_drift.output) >> trigger_training
