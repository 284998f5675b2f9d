"""Daily churn model: validate the day's data, sweep hyperparameters on GPUs, deploy if better."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, TaskGroup, get_current_context, task

from ml_platform.container import container_task, mapped_container_task
from ml_platform.dag_defaults import platform_default_args
from ml_platform.sensors import wait_for_partition
from ml_platform.settings import platform_config
from ml_platform.sweep import build_combinations, trainer_arguments

DAG_ID = "ml_training_pipeline"
MAX_PARALLEL_TRAININGS = 4  # GPU pods of one run at once: the sweep must not hog the pool
PLATFORM = platform_config()
PARTITION_URI = PLATFORM.datasets_uri + "/daily/{{ ds }}"


def prepared_uri(ds: str) -> str:
    """Where preprocess writes the day's splits (and where train and evaluate read them)."""
    return f"{PLATFORM.datasets_uri}/prepared/{ds}"


PREPARED_URI = prepared_uri("{{ ds }}")  # rendered by Airflow in container task arguments


with DAG(
    dag_id=DAG_ID,
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=platform_default_args(owner="ml-platform", execution_timeout=timedelta(hours=2)),
    tags=["ml", "training", "gpu"],
    doc_md=__doc__,
    params={
        "model_name": Param("churn-classifier", type="string", minLength=1),
        "learning_rates": Param([0.001, 0.003], type="array", items={"type": "number"}),
        "batch_sizes": Param([128], type="array", items={"type": "integer"}),
        "hidden_sizes": Param(["64,32"], type="array", items={"type": "string"}),
        "optimizers": Param(["adam"], type="array", items={"type": "string"}),
        "dropouts": Param([0.1], type="array", items={"type": "number"}),
        "epochs": Param(15, type="integer", minimum=1),
        "max_combinations": Param(16, type="integer", minimum=1),
        "metric": Param("roc_auc", enum=["roc_auc", "accuracy", "f1"]),
        "min_metric": Param(0.7, type="number"),
        "min_improvement": Param(0.005, type="number"),
    },
) as dag:

    @task
    def hyperparameters(**context: Any) -> list[list[str]]:
        """Validate the sweep params and turn every combination into trainer arguments."""
        params = context["params"]
        combos = build_combinations(params)
        data_uri = prepared_uri(context["ds"])  # XCom values are not templated: render here
        return [trainer_arguments(c, data_uri, params["model_name"]) for c in combos]

    combinations = hyperparameters()

    wait_for_data = wait_for_partition(
        "wait_for_data",
        PARTITION_URI,
        poke_interval=timedelta(minutes=5),
        timeout=timedelta(hours=6),
    )

    with TaskGroup("data_preparation") as data_preparation:
        validate = container_task(
            "validate",
            image="trainer",
            arguments=["validate", "--input-uri", PARTITION_URI],
            retries=0,  # bad data stays bad: fail at once, with the validator's message
        )
        preprocess = container_task(
            "preprocess",
            image="trainer",
            arguments=["preprocess", "--input-uri", PARTITION_URI, "--output-uri", PREPARED_URI],
            memory="2Gi",
        )
        validate >> preprocess

    train = mapped_container_task(
        "train",
        image="trainer",
        arguments=combinations,
        gpus=1,
        cpu="2",
        memory="4Gi",
        max_parallel=MAX_PARALLEL_TRAININGS,
    )

    @task(multiple_outputs=True)
    def select_best(results: list[dict[str, Any]]) -> dict[str, Any]:
        """The candidate with the best validation score (the test split is kept for evaluate)."""
        metric = "val_" + get_current_context()["params"]["metric"]
        ranked = sorted(results, key=lambda r: r["metrics"][metric], reverse=True)
        best = ranked[0]
        print(f"best of {len(ranked)} runs by {metric}: {best['run_id']} {best['params']}")
        return best

    best = select_best(train.output)

    evaluate = container_task(
        "evaluate",
        image="trainer",
        arguments=[
            "evaluate",
            "--model-uri",
            best["model_uri"],
            "--run-id",
            best["run_id"],
            "--data-uri",
            PREPARED_URI,
            "--model-name",
            "{{ params.model_name }}",
            "--metric",
            "{{ params.metric }}",
            "--min-metric",
            "{{ params.min_metric }}",
            "--min-improvement",
            "{{ params.min_improvement }}",
        ],
    )

    @task.branch
    def deploy_or_skip(evaluation: dict[str, Any]) -> str:
        print(evaluation["reason"])
        return "deploy" if evaluation["should_deploy"] else "skip_deploy"

    deploy = container_task(
        "deploy",
        image="deployer",
        service_account="deployer",
        arguments=["deploy", "--run-id", best["run_id"], "--model-name", "{{ params.model_name }}"],
        env={
            "DEPLOYER_NAMESPACE": PLATFORM.namespaces["serving"],
            "DEPLOYER_IMAGE": PLATFORM.images.ref("deployer"),
            "DEPLOYER_SERVICE_ACCOUNT": PLATFORM.service_accounts["serving"],
            # The model server loads the model from MLflow, which has auth on in clusters.
            **(
                {"DEPLOYER_ENV_SECRET": PLATFORM.mlflow_credentials_secret}
                if PLATFORM.mlflow_credentials_secret
                else {}
            ),
        },
        retries=0,  # a failed rollout has already rolled itself back
    )

    @task
    def skip_deploy() -> str:
        return "the candidate did not beat the champion: nothing deployed"

    @task(trigger_rule="none_failed_min_one_success")
    def notify(**context: Any) -> dict[str, Any]:
        """Report the run: best params and metrics, the decision, what serves now."""
        ti = context["ti"]
        best_run = ti.xcom_pull(task_ids="select_best")
        evaluation = ti.xcom_pull(task_ids="evaluate")
        deployed = ti.xcom_pull(task_ids="deploy")
        summary = {
            "model_name": context["params"]["model_name"],
            "best_run_id": best_run["run_id"],
            "best_params": best_run["params"],
            "best_metrics": best_run["metrics"],
            "should_deploy": evaluation["should_deploy"],
            "reason": evaluation["reason"],
            "champion_before": evaluation["champion"],
            "deployed": deployed,
        }
        print("pipeline summary:", summary)
        return summary

    combinations >> wait_for_data >> data_preparation >> train
    branch = deploy_or_skip(evaluate.output)
    evaluate >> branch >> [deploy, skip_deploy()] >> notify()
