"""Watch each new partition for drift and the champion for decay; retrain when either crosses.

Computes PSI per feature of the day's partition against the data the champion was trained on,
and the champion's metric on the day's labelled rows. When a feature's PSI reaches
`psi_threshold` or the metric falls below `min_metric`, it triggers `ml_training_pipeline`
for the same day.

With an `slo` in the model spec, check_drift also watches the champion's live endpoint (its
p99 latency, error rate and throughput over the SLO's window); on a breach `slo_breached`
fails the run with the breach as its reason, so the run's failure notification says "SLO
breached: ...", and with `on_breach: rollback` the deployer's rollback runs first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowFailException

from ml_contract import SPEC_ENV, ModelSpec
from ml_platform.container import container_task
from ml_platform.dag_defaults import platform_default_args

# The training DAG's deployer environment: the rollback runs as the same team's deploy step
# (MLP206), with the same namespace, image and serving identity.
from ml_platform.deployer_rules import deployer_env
from ml_platform.model_specs import spec_beside, team_of
from ml_platform.notifications import run_callbacks
from ml_platform.sensors import wait_for_partition
from ml_platform.settings import platform_config

DAG_ID = "ml_drift_monitor"
TRAINING_DAG_ID = "ml_training_pipeline"
PARTITION_URI = platform_config().datasets_uri + "/daily/{{ ds }}"
# The churn model's contract: the monitor reads the partition the way training does.
SPEC = spec_beside(__file__, "churn_classifier")


def slo_tasks(spec: ModelSpec, check_drift: Any) -> None:
    """slo_gate -> [rollback ->] slo_breached, after check_drift; nothing without an SLO."""
    if spec.slo is None:
        return
    rollback_first = spec.slo.on_breach == "rollback"

    @task.branch
    def slo_gate(report: dict[str, Any]) -> list[str]:
        slo = report.get("slo") or {}
        if not slo.get("breached"):
            print("SLO:", "; ".join(slo.get("breaches") or []) or slo.get("reason") or "met")
            return []
        return ["rollback", "slo_breached"] if rollback_first else ["slo_breached"]

    # all_done: the breach is reported whether or not the rollback worked.
    @task(trigger_rule="all_done", retries=0)
    def slo_breached(**context: Any) -> None:
        ti = context["ti"]
        slo = ti.xcom_pull(task_ids="check_drift")["slo"]
        message = f"SLO breached: {'; '.join(slo['breaches'])}"
        if slo.get("endpoint"):
            message += f" at {slo['endpoint']}"
        if rollback_first:
            rolled = ti.xcom_pull(task_ids="rollback")
            message += (
                f"; rolled back to v{rolled['version']} (from v{rolled['rolled_back_from']})"
                if rolled
                else "; the rollback failed (see task rollback)"
            )
        raise AirflowFailException(message)

    gate = slo_gate(check_drift.output)
    breached = slo_breached()
    if rollback_first:
        team = team_of(spec.source)
        rollback = container_task(
            "rollback",
            image="deployer",
            service_account="deployer",
            arguments=["rollback", "--model-name", "{{ params.model_name }}"],
            env={SPEC_ENV: spec.to_json(), **deployer_env(platform_config(), team, spec.model)},
            retries=0,  # a failed rollback has already put back what served
        )
        gate >> rollback >> breached
    gate >> breached


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
    slo_tasks(SPEC, check_drift)
